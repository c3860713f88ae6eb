/* ocsp_fuzz: libFuzzer target for ocsp_parse_response, the DER walk over
 * the OCSP response file stapled for a certificate (certs[].ocsp), and
 * ocsp_parse_generalized_time, which reads its times. See fuzz/README.md.
 * Beyond "no crash, no read past the input": a response that parses has
 * its serial inside the input and a known status; a time that parses is
 * one a GeneralizedTime can say. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "ocsp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ocsp_response response;
    const char *error = NULL;
    int64_t when;

    if (ocsp_parse_response(data, size, &response, &error) == 0) {
        assert(response.serial >= data && response.serial + response.serial_len <= data + size);
        assert(response.cert_status == OCSP_CERT_GOOD ||
               response.cert_status == OCSP_CERT_REVOKED ||
               response.cert_status == OCSP_CERT_UNKNOWN);
    } else {
        assert(error != NULL);
    }
    /* Years 0000 to 9999. */
    if (ocsp_parse_generalized_time(data, size, &when) == 0)
        assert(when >= -62167219200LL && when < 253402300800LL);
    return 0;
}
