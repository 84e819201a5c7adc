/*
 * b64: strict standard base64 (RFC 4648 section 4) decoding.
 */
#ifndef MAILPIPE_B64_H
#define MAILPIPE_B64_H

#include <stddef.h>

/* Bytes b64_decode() may write for an input of len characters. */
#define B64_DECODED_MAX(len) (((len) + 3) / 4 * 3)

/*
 * Decodes len characters of in into out (at least B64_DECODED_MAX(len) bytes) and sets
 * *outlen.  Padding is optional but, when present, must be correct; any character outside
 * the alphabet, including white space, is an error (-1).
 */
int b64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
    __attribute__((warn_unused_result));

#endif
