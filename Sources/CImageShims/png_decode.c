// PNG decoding with libpng, from memory, to 8-bit RGB (transparency composited onto white).
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include "ImageShims.h"

// MARK: - Input and error handling

typedef struct {
    jmp_buf jump;
    int status;
    char *message;
    size_t message_size;
    const uint8_t *data;
    size_t size;
    size_t offset;
} decode_context;

static void on_error(png_structp png, png_const_charp text) {
    decode_context *ctx = png_get_error_ptr(png);
    if (ctx->status == VOCO_IMAGE_OK) ctx->status = VOCO_IMAGE_CORRUPT;
    if (ctx->message[0] == 0) snprintf(ctx->message, ctx->message_size, "%s", text);
    longjmp(ctx->jump, 1);
}

/// Warnings (a bad CRC in an ancillary chunk, an odd sRGB profile) do not touch the pixels.
static void on_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

static void read_bytes(png_structp png, png_bytep out, size_t count) {
    decode_context *ctx = png_get_io_ptr(png);
    if (ctx->size - ctx->offset < count) {
        ctx->status = VOCO_IMAGE_TRUNCATED;
        snprintf(ctx->message, ctx->message_size, "the data ends at byte %zu, inside a chunk", ctx->size);
        png_error(png, "truncated");
    }
    memcpy(out, ctx->data + ctx->offset, count);
    ctx->offset += count;
}

// MARK: - Transparency

/// RGBA -> RGB in place ([count][4] -> [count][3]): each pixel alpha-composited onto opaque
/// white with Pillow's integer arithmetic (AlphaComposite.c with dst = (255, 255, 255, 255),
/// where its coefficients reduce to 128 * a and 128 * (255 - a)), as transformers 5's
/// convert_to_rgb does with Image.alpha_composite.
static void composite_onto_white(uint8_t *pixels, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t r = pixels[4 * i], g = pixels[4 * i + 1], b = pixels[4 * i + 2], a = pixels[4 * i + 3];
        uint32_t rgb[3] = {r, g, b};
        for (int c = 0; c < 3; c++) {
            uint32_t t = rgb[c] * (a << 7) + 255 * ((255 - a) << 7) + (0x80 << 7);
            pixels[3 * i + c] = a == 0 ? 255 : (uint8_t)(((((t >> 8) + t) >> 8)) >> 7);
        }
    }
}

// MARK: - Decode

int voco_png_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, voco_image_result *result) {
    decode_context ctx;
    png_structp png;
    png_infop info = NULL;
    uint8_t *volatile pixels = NULL;  // [height][width][3]
    memset(result, 0, sizeof(*result));
    memset(&ctx, 0, sizeof(ctx));
    ctx.message = result->message;
    ctx.message_size = sizeof(result->message);
    ctx.data = data;
    ctx.size = size;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    if (!png) return VOCO_IMAGE_OUT_OF_MEMORY;
    if (setjmp(ctx.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        return ctx.status;
    }
    info = png_create_info_struct(png);
    if (!info) png_error(png, "cannot allocate PNG info");
    png_set_read_fn(png, &ctx, read_bytes);
    // Only IHDR, PLTE, tRNS, IDAT and IEND reach libpng's handlers: text, ICC and the like are
    // skipped unread (no inflating of compressed metadata). EXIF is read by VoCoImage itself.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    // Our pixel limit decides, so that a huge header gets the too-large status, not libpng's.
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    result->width = width;
    result->height = height;
    result->components = png_get_channels(png, info);
    if ((uint64_t)width * height > max_pixels) {
        snprintf(result->message, sizeof(result->message), "%ux%u", (unsigned)width, (unsigned)height);
        ctx.status = VOCO_IMAGE_TOO_LARGE;
        longjmp(ctx.jump, 1);
    }

    // Pillow's rawmodes: "RGB;16B" and friends keep the high byte; "L;2"/"L;4" scale to 8 bits;
    // palettes are looked up; gray is replicated. Alpha and tRNS become an alpha channel, which
    // is composited onto white below (transformers 5's convert_to_rgb).
    int transparent = (color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (transparent) png_set_tRNS_to_alpha(png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = transparent ? 4 : 3;
    if (png_get_channels(png, info) != channels || png_get_bit_depth(png, info) != 8) {
        snprintf(result->message, sizeof(result->message), "libpng gave %d channels of %d bits, expected %d of 8",
                 png_get_channels(png, info), png_get_bit_depth(png, info), channels);
        ctx.status = VOCO_IMAGE_UNSUPPORTED;
        longjmp(ctx.jump, 1);
    }

    size_t stride = (size_t)width * channels;
    pixels = malloc(stride * height);
    if (!pixels) {
        snprintf(result->message, sizeof(result->message), "cannot allocate %ux%u pixels", (unsigned)width, (unsigned)height);
        ctx.status = VOCO_IMAGE_OUT_OF_MEMORY;
        longjmp(ctx.jump, 1);
    }
    // One row at a time, every pass (Adam7 fills its pixels into the same rows): no row-pointer
    // array, whose size a 1-pixel-wide image would make as large as the pixels.
    for (int pass = 0; pass < passes; pass++) {
        for (png_uint_32 y = 0; y < height; y++) png_read_row(png, pixels + stride * y, NULL);
    }
    // Not png_read_end: chunks after the image data do not change it.
    png_destroy_read_struct(&png, &info, NULL);
    if (transparent) composite_onto_white(pixels, (size_t)width * height);
    result->pixels = pixels;
    return VOCO_IMAGE_OK;
}
