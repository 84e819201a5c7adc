/*
 * ingest: the context the ingest FastCGI app's handlers share (borrowed by each request).
 */
#ifndef MAILPIPE_INGEST_H
#define MAILPIPE_INGEST_H

#include "apikey.h"
#include "config.h"
#include "dispatch.h"
#include "idemkey.h"
#include "kpub.h"
#include "rconn.h"
#include "sig.h"

struct ingest {
	const struct config *cf;
	struct kpub *kp;
	struct sig_key *key;   /* NULL when webhook.verify = off */
	struct apikeys *keys;  /* API keys, reloaded in the background */
	struct rconn *redis;   /* Idempotency-Key records */
	struct idemdb *idemdb; /* Idempotency-Key lookups when Redis has lost a record */
};

void webhook_handle(struct req *r);
void mailsend_handle(struct req *r);

#endif
