// JPEG decoding with libjpeg-turbo, made strict: warnings that mean the data is damaged or cut
// short become errors (libjpeg would otherwise pad the image with grey and carry on).
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include "ImageShims.h"

// MARK: - Error handling

/// More scans than any real progressive JPEG has (libjpeg-turbo's own fuzzers use 500): each
/// scan revisits the whole coefficient buffer, so a file of thousands of tiny scans is a hang.
enum { MAX_SCANS = 500 };

typedef struct {
    struct jpeg_error_mgr pub;    // first, so the library's pointer is also ours
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int status;
    char *message;
    size_t message_size;
} decode_context;

static void fail(j_common_ptr cinfo, int status) {
    decode_context *ctx = (decode_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(ctx->message, ctx->message_size, "%s", text);
    ctx->status = status;
    longjmp(ctx->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo) { fail(cinfo, VOCO_IMAGE_CORRUPT); }

/// Level -1 is a warning. Those about metadata are harmless; those about the entropy-coded data
/// mean libjpeg is inventing pixels, and the premature-end one means the file was cut short.
static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    switch (cinfo->err->msg_code) {
    case JWRN_EXTRANEOUS_DATA:    // junk bytes between markers; the image data is intact
    case JWRN_ADOBE_XFORM:
    case JWRN_JFIF_MAJOR:
    case JWRN_BOGUS_ICC:
    case JWRN_BOGUS_PROGRESSION:  // an odd scan script; every scan present is still decoded
        cinfo->err->num_warnings++;
        return;
    case JWRN_JPEG_EOF:
        fail(cinfo, VOCO_IMAGE_TRUNCATED);
        return;
    default:
        fail(cinfo, VOCO_IMAGE_CORRUPT);
    }
}

static void on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        decode_context *ctx = (decode_context *)cinfo->err;
        snprintf(ctx->message, ctx->message_size, "more than %d scans", MAX_SCANS);
        ctx->status = VOCO_IMAGE_CORRUPT;
        longjmp(ctx->jump, 1);
    }
}

// MARK: - Colour conversion (Pillow's rawmodes and convert("RGB"))

/// Pillow reads every 4-component JPEG as "CMYK;I" (Adobe polarity: stored inverted), then
/// Convert.c's cmyk2rgb: nk = 255 - k; out = clip(nk - muldiv255(c, nk)). With the stored
/// (inverted) values C, K that is K - muldiv255(255 - C, K).
static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, uint32_t width) {
    for (uint32_t x = 0; x < width; x++, in += 4, out += 3) {
        int nk = in[3];  // 255 - (255 - K)
        for (int c = 0; c < 3; c++) {
            int v = nk - muldiv255(255 - in[c], nk);
            out[c] = (uint8_t)(v < 0 ? 0 : v);
        }
    }
}

static void gray_row_to_rgb(const uint8_t *in, uint8_t *out, uint32_t width) {
    for (uint32_t x = 0; x < width; x++, out += 3) out[0] = out[1] = out[2] = in[x];
}

// MARK: - Decode

int voco_jpeg_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, voco_image_result *result) {
    struct jpeg_decompress_struct cinfo;
    decode_context ctx;
    uint8_t *volatile pixels = NULL;  // [height][width][3]
    uint8_t *volatile row = NULL;     // [width][components] for gray and CMYK
    memset(result, 0, sizeof(*result));
    memset(&ctx, 0, sizeof(ctx));
    ctx.message = result->message;
    ctx.message_size = sizeof(result->message);

    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = on_error_exit;
    ctx.pub.emit_message = on_emit_message;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return ctx.status;
    }
    jpeg_create_decompress(&cinfo);
    ctx.progress.progress_monitor = on_progress;
    cinfo.progress = &ctx.progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    result->width = cinfo.image_width;
    result->height = cinfo.image_height;
    result->components = (uint32_t)cinfo.num_components;
    if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(result->message, sizeof(result->message), "%ux%u", cinfo.image_width, cinfo.image_height);
        jpeg_destroy_decompress(&cinfo);
        return VOCO_IMAGE_TOO_LARGE;
    }
    if (cinfo.data_precision != 8 || (cinfo.num_components != 1 && cinfo.num_components != 3 && cinfo.num_components != 4)) {
        snprintf(result->message, sizeof(result->message), "%d-bit samples, %d components (8-bit with 1, 3 or 4 components are supported)",
                 cinfo.data_precision, cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return VOCO_IMAGE_UNSUPPORTED;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : cinfo.num_components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_start_decompress(&cinfo);

    uint32_t width = cinfo.output_width, height = cinfo.output_height;
    int components = cinfo.output_components;
    size_t stride = (size_t)width * 3;
    pixels = malloc(stride * height);
    if (components != 3) row = malloc((size_t)width * (size_t)components);
    if (!pixels || (components != 3 && !row)) {
        snprintf(result->message, sizeof(result->message), "cannot allocate %ux%u RGB pixels", width, height);
        ctx.status = VOCO_IMAGE_OUT_OF_MEMORY;
        longjmp(ctx.jump, 1);
    }
    while (cinfo.output_scanline < height) {
        uint8_t *out = pixels + stride * cinfo.output_scanline;
        JSAMPROW target = components == 3 ? out : row;
        if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
            snprintf(result->message, sizeof(result->message), "no scanline %u", cinfo.output_scanline);
            ctx.status = VOCO_IMAGE_TRUNCATED;
            longjmp(ctx.jump, 1);
        }
        if (components == 1) gray_row_to_rgb(row, out, width);
        else if (components == 4) cmyk_row_to_rgb(row, out, width);
    }
    // Not jpeg_finish_decompress: what follows the last scanline (a missing EOI, trailing bytes)
    // does not change the image, and Pillow accepts it too.
    jpeg_destroy_decompress(&cinfo);
    free(row);
    result->width = width;
    result->height = height;
    result->pixels = pixels;
    return VOCO_IMAGE_OK;
}

void voco_image_free(void *pixels) { free(pixels); }

// MARK: - Encode (benchmarks and tests)

size_t voco_jpeg_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                            int progressive, uint8_t **out) {
    struct jpeg_compress_struct cinfo;
    decode_context ctx;
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    char message[JMSG_LENGTH_MAX];
    memset(&ctx, 0, sizeof(ctx));
    ctx.message = message;
    ctx.message_size = sizeof(message);
    *out = NULL;
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = on_error_exit;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 0;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < height) {
        JSAMPROW r = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * width * 3);
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    return size;
}
