/*
 * ingest: the context the ingest FastCGI app's handlers share (borrowed by each request).
 */
#ifndef MAILPIPE_INGEST_H
#define MAILPIPE_INGEST_H

#include "config.h"
#include "dispatch.h"
#include "kpub.h"
#include "sig.h"

struct ingest {
	const struct config *cf;
	struct kpub *kp;
	struct sig_key *key; /* NULL when webhook.verify = off */
};

void webhook_handle(struct req *r);

#endif
