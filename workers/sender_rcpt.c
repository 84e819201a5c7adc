/*
 * sender_rcpt: step 4 of the sender, the request minus its suppressed recipients; see
 * sender.h.  Addresses are compared lower-cased against the suppressions table (the
 * authoritative list; the Redis set is only the sink's mirror of it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sender.h"

int
sender_rcpt_filter(struct sender_store *st, const char *request, char **body, size_t *dropped,
		   size_t *lost, char *err, size_t errlen)
{
	static const char *const fields[] = {"to", "cc", "bcc"};
	json_error_t jerr;
	json_t *req = NULL, *emails = NULL, *pers;
	json_t **lists = NULL;
	size_t *idx = NULL, n = 0, cap = 0;
	unsigned char *hit = NULL;
	char *ejson = NULL;
	int rc = -1;

	*body = NULL;
	*dropped = *lost = 0;
	if ((req = json_loads(request, 0, &jerr)) == NULL || !json_is_object(req)) {
		snprintf(err, errlen, "cannot read the stored request: %s",
			 req ? "not an object" : jerr.text);
		rc = -2;
		goto out;
	}
	if ((emails = json_array()) == NULL)
		goto oom;
	pers = json_object_get(req, "personalizations");
	for (size_t i = 0; i < json_array_size(pers); i++) {
		json_t *p = json_array_get(pers, i);

		for (size_t f = 0; f < 3; f++) {
			json_t *list = json_object_get(p, fields[f]);

			for (size_t k = 0; k < json_array_size(list); k++) {
				const char *e = json_string_value(
				    json_object_get(json_array_get(list, k), "email"));
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					json_t **nl = realloc(lists, cap * sizeof(*lists));
					size_t *ni = nl ? realloc(idx, cap * sizeof(*idx)) : NULL;
					if (nl)
						lists = nl;
					if (ni == NULL)
						goto oom;
					idx = ni;
				}
				if (json_array_append_new(emails, json_string(e ? e : "")) < 0)
					goto oom;
				lists[n] = list;
				idx[n++] = k;
			}
		}
	}
	if (n > 0) {
		if ((ejson = json_dumps(emails, JSON_COMPACT)) == NULL || (hit = malloc(n)) == NULL)
			goto oom;
		if (sender_store_suppressions(st, ejson, n, hit, err, errlen) < 0)
			goto out;
		/* Backwards, so the indexes still to remove stay right. */
		for (size_t r = n; r-- > 0;)
			if (hit[r]) {
				json_array_remove(lists[r], idx[r]);
				(*dropped)++;
			}
	}
	if (*dropped > 0) {
		for (size_t i = json_array_size(pers); i-- > 0;) {
			json_t *p = json_array_get(pers, i);

			if (json_array_size(json_object_get(p, "to")) == 0) {
				*lost += json_array_size(json_object_get(p, "cc")) +
					 json_array_size(json_object_get(p, "bcc"));
				json_array_remove(pers, i);
				continue;
			}
			for (size_t f = 1; f < 3; f++)
				if (json_is_array(json_object_get(p, fields[f])) &&
				    json_array_size(json_object_get(p, fields[f])) == 0)
					json_object_del(p, fields[f]);
		}
		if (json_array_size(pers) == 0) {
			rc = 0;
			goto out;
		}
	}
	if ((*body = json_dumps(req, JSON_COMPACT)) == NULL)
		goto oom;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory building the request");
out:
	free(hit);
	free(ejson);
	free(lists);
	free(idx);
	json_decref(emails);
	json_decref(req);
	return rc;
}
