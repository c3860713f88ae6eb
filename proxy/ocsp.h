/* ocsp: the few fields of a DER OCSP response (RFC 6960) that stapling needs.
 *
 * tlsterm staples a response file as it is; it only reads enough to refuse
 * one that cannot help a client: not "successful", not a basic response, for
 * another certificate, revoked, or past its nextUpdate. BoringSSL has no OCSP
 * parser, so this walks the DER with CBS. The signature is the client's to
 * check. */
#ifndef TLSTERM_OCSP_H
#define TLSTERM_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ocsp_cert_status {
    OCSP_CERT_GOOD,
    OCSP_CERT_REVOKED,
    OCSP_CERT_UNKNOWN,
};

/* struct ocsp_response is what ocsp_parse_response reads from the first
 * SingleResponse. |serial| points into the parsed bytes: the certificate's
 * serial number as DER INTEGER contents. Times are seconds since the epoch. */
struct ocsp_response {
    enum ocsp_cert_status cert_status;
    const uint8_t *serial;
    size_t serial_len;
    int64_t this_update;
    bool has_next_update;
    int64_t next_update;
};

/* ocsp_parse_response parses |der| (|der_len| bytes), a whole OCSPResponse.
 * It returns 0 and fills |out|, or -1 and sets |*out_error| to a static
 * message ("not a DER OCSP response", "response status is 'tryLater'",
 * ...). */
int ocsp_parse_response(const uint8_t *der, size_t der_len, struct ocsp_response *out,
                        const char **out_error);

/* ocsp_parse_generalized_time reads "YYYYMMDDHHMMSS[.fff]Z" (|len| bytes)
 * into seconds since the epoch; 0, or -1 if it is not one. */
int ocsp_parse_generalized_time(const uint8_t *text, size_t len, int64_t *out_time);

#endif
