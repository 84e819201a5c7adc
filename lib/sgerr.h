/*
 * sgerr: SendGrid's error shape, used by every mailpipe API answer and validator:
 *
 *   {"errors":[{"message":"...","field":"personalizations.0.to.0.email"|null,"help":null}]}
 */
#ifndef MAILPIPE_SGERR_H
#define MAILPIPE_SGERR_H

#include <jansson.h>

/* One error entry; field may be NULL.  Returns a new reference (NULL if out of memory). */
json_t *sgerr_entry(const char *field, const char *message);

/* Appends a formatted entry to the array errors (borrowed). */
void sgerr_add(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
