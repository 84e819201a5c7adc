/*
 * msgid: mailpipe's message ids: time-ordered, unique without coordination.  A ULID:
 * 48 bits of milliseconds since the epoch and 80 random bits, in Crockford base32
 * (26 characters, sorting by creation time), e.g. 01JD3K5Q7X9V2M4N6P8R0T2W4Y.
 */
#ifndef MAILPIPE_MSGID_H
#define MAILPIPE_MSGID_H

#define MSGID_LEN 26

/* Writes a new id and its NUL into out.  Thread-safe.  -1 if no randomness was had. */
int msgid_new(char out[MSGID_LEN + 1]) __attribute__((warn_unused_result));

/* 1 if s is MSGID_LEN characters of Crockford base32 (upper case), else 0. */
int msgid_valid(const char *s);

#endif
