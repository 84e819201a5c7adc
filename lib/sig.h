/*
 * sig: verification of SendGrid's signed Event Webhook.
 *
 * SendGrid signs the bytes of the X-Twilio-Email-Event-Webhook-Timestamp header followed
 * immediately by the raw request body with ECDSA P-256 / SHA-256; the signature header is
 * standard base64 of a DER SEQUENCE{r, s}.  The public key is standard base64 of a DER
 * SubjectPublicKeyInfo, as SendGrid's settings page shows it.
 */
#ifndef MAILPIPE_SIG_H
#define MAILPIPE_SIG_H

#include <stddef.h>

struct sig_key;

enum sig_status {
	SIG_OK = 0,
	SIG_MISSING,      /* a header is absent or empty */
	SIG_BAD_ENCODING, /* not base64, not DER, or a timestamp that is not decimal */
	SIG_MISMATCH,     /* well formed, but not made by this key over these bytes */
	SIG_EXPIRED,      /* older than the configured maximum age */
};

/*
 * Parses a base64 DER public key (white space allowed, as pasted from a web page).
 * Returns a new key or NULL with a message in err.
 */
struct sig_key *sig_key_new(const char *b64, char *err, size_t errlen);
void sig_key_destroy(struct sig_key *key);

/*
 * Checks a signature (borrowed strings, either may be NULL) over timestamp + body.
 * max_age > 0 also refuses timestamps older than max_age seconds before now.
 * Thread-safe for one key.  Fills err with the reason when the answer is not SIG_OK.
 */
enum sig_status sig_verify(const struct sig_key *key, const char *sig_b64, const char *timestamp,
			   const void *body, size_t len, long max_age, long now, char *err,
			   size_t errlen);

#endif
