// C glue between VoCoImage and libjpeg-turbo / libpng. Both libraries report fatal errors by
// calling a handler that must not return; the handlers here longjmp back into the decode call,
// which Swift cannot do safely. Every decode is one call that owns its library state and either
// returns pixels or a status with a message.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VOCO_IMAGE_OK = 0,
    VOCO_IMAGE_CORRUPT = 1,       // the library refused the data, or warned that the data is damaged
    VOCO_IMAGE_TRUNCATED = 2,     // the data ended before the image did
    VOCO_IMAGE_TOO_LARGE = 3,     // width * height over the caller's limit (seen in the header)
    VOCO_IMAGE_UNSUPPORTED = 4,   // well-formed but a variant we do not decode (12-bit JPEG, 2 components)
    VOCO_IMAGE_OUT_OF_MEMORY = 5,
} voco_image_status;

typedef struct {
    uint32_t width;               // set once the header is read, also when the status is not OK
    uint32_t height;
    uint32_t components;          // JPEG: components in the file (1, 3, 4); PNG: channels in the file
    uint8_t *pixels;              // [height][width][3] RGB (the allocation may be larger), malloc'd; release with voco_image_free
    char message[200];            // the library's words when the status is not OK
} voco_image_result;

/// Decodes a JPEG to RGB as Pillow's decoder plus convert("RGB") does: grayscale replicated,
/// 4-component (CMYK/YCCK) taken as Adobe-inverted CMYK and converted with Pillow's formula.
int voco_jpeg_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, voco_image_result *result);

/// Decodes a PNG to RGB as Pillow's decoder plus transformers 5's convert_to_rgb does: 16-bit
/// samples keep the high byte, palettes are looked up, gray is replicated, alpha (and a tRNS
/// colour or palette alphas) is composited onto white.
int voco_png_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, voco_image_result *result);

void voco_image_free(void *pixels);

/// Encodes [height][width][3] RGB as a JPEG (4:2:0, quality 1-100); for benchmarks and tests.
/// Returns the byte count and a malloc'd buffer in *out (release with voco_image_free), or 0.
size_t voco_jpeg_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                            int progressive, uint8_t **out);
