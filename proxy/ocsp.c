/* ocsp: DER OCSP responses, read with CBS. See ocsp.h.
 *
 *   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
 *                               responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
 *   ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, ... }
 *   ResponseData ::= SEQUENCE { version [0] EXPLICIT INTEGER OPTIONAL,
 *                               responderID CHOICE { [1] Name, [2] KeyHash },
 *                               producedAt GeneralizedTime,
 *                               responses SEQUENCE OF SingleResponse, ... }
 *   SingleResponse ::= SEQUENCE { certID CertID,
 *                                 certStatus CHOICE { [0] good, [1] revoked, [2] unknown },
 *                                 thisUpdate GeneralizedTime,
 *                                 nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }
 *   CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash OCTET STRING,
 *                         issuerKeyHash OCTET STRING, serialNumber INTEGER } */
#include "ocsp.h"

#include <string.h>
#include <time.h>

#include <openssl/bytestring.h>

/* id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1 */
static const uint8_t ocsp_basic_oid[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};

/* Messages for the responseStatus values of RFC 6960 (4 is unused). */
static const char *const status_errors[] = {
    [1] = "the response status is 'malformedRequest'",
    [2] = "the response status is 'internalError'",
    [3] = "the response status is 'tryLater'",
    [5] = "the response status is 'sigRequired'",
    [6] = "the response status is 'unauthorized'",
};

#define CONTEXT(n) (CBS_ASN1_CONTEXT_SPECIFIC | (n))
#define CONTEXT_CONSTRUCTED(n) (CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | (n))

static int digits(const uint8_t *text, size_t n, int *out)
{
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        *out = *out * 10 + (text[i] - '0');
    }
    return 0;
}

int ocsp_parse_generalized_time(const uint8_t *text, size_t len, int64_t *out_time)
{
    int year, month, day, hour, minute, second;
    size_t end = 14;
    struct tm tm = {0};

    if (len < 15 || digits(text, 4, &year) != 0 || digits(text + 4, 2, &month) != 0 ||
        digits(text + 6, 2, &day) != 0 || digits(text + 8, 2, &hour) != 0 ||
        digits(text + 10, 2, &minute) != 0 || digits(text + 12, 2, &second) != 0)
        return -1;
    if (text[end] == '.') {
        end++;
        while (end < len && text[end] >= '0' && text[end] <= '9')
            end++;
        if (end == 15)
            return -1;
    }
    if (end + 1 != len || text[end] != 'Z' || month < 1 || month > 12 || day < 1 || day > 31 ||
        hour > 23 || minute > 59 || second > 60)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    *out_time = (int64_t)timegm(&tm);
    return 0;
}

static int get_time(CBS *cbs, int64_t *out_time)
{
    CBS time;
    return CBS_get_asn1(cbs, &time, CBS_ASN1_GENERALIZEDTIME) &&
                   ocsp_parse_generalized_time(CBS_data(&time), CBS_len(&time), out_time) == 0
               ? 0
               : -1;
}

/* parse_single reads the first SingleResponse of |responses|. */
static int parse_single(CBS *responses, struct ocsp_response *out)
{
    CBS single, cert_id, ignored, serial, next_update;
    int has_next_update;

    if (!CBS_get_asn1(responses, &single, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&single, &cert_id, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&cert_id, &ignored, CBS_ASN1_SEQUENCE) ||    /* hashAlgorithm */
        !CBS_get_asn1(&cert_id, &ignored, CBS_ASN1_OCTETSTRING) || /* issuerNameHash */
        !CBS_get_asn1(&cert_id, &ignored, CBS_ASN1_OCTETSTRING) || /* issuerKeyHash */
        !CBS_get_asn1(&cert_id, &serial, CBS_ASN1_INTEGER) || CBS_len(&serial) == 0)
        return -1;
    out->serial = CBS_data(&serial);
    out->serial_len = CBS_len(&serial);
    /* CBS_get_asn1 consumes the element even when its tag differs: peek. */
    if (CBS_peek_asn1_tag(&single, CONTEXT(0)))
        out->cert_status = OCSP_CERT_GOOD;
    else if (CBS_peek_asn1_tag(&single, CONTEXT_CONSTRUCTED(1)))
        out->cert_status = OCSP_CERT_REVOKED;
    else if (CBS_peek_asn1_tag(&single, CONTEXT(2)))
        out->cert_status = OCSP_CERT_UNKNOWN;
    else
        return -1;
    if (!CBS_get_any_asn1(&single, &ignored, NULL))
        return -1;
    if (get_time(&single, &out->this_update) != 0 ||
        !CBS_get_optional_asn1(&single, &next_update, &has_next_update, CONTEXT_CONSTRUCTED(0)))
        return -1;
    out->has_next_update = has_next_update != 0;
    if (has_next_update && get_time(&next_update, &out->next_update) != 0)
        return -1;
    return 0;
}

int ocsp_parse_response(const uint8_t *der, size_t der_len, struct ocsp_response *out,
                        const char **out_error)
{
    CBS cbs, response, status, bytes_explicit, bytes, oid, octets, basic, data, ignored;
    CBS responses;
    uint64_t status_value;
    int64_t produced_at;

    memset(out, 0, sizeof(*out));
    *out_error = "not a DER OCSP response";
    CBS_init(&cbs, der, der_len);
    if (!CBS_get_asn1(&cbs, &response, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0 ||
        !CBS_get_asn1(&response, &status, CBS_ASN1_ENUMERATED) || CBS_len(&status) != 1)
        return -1;
    status_value = CBS_data(&status)[0];
    if (status_value != 0) {
        *out_error = "the response status is not 'successful'";
        if (status_value < sizeof(status_errors) / sizeof(status_errors[0]) &&
            status_errors[status_value] != NULL)
            *out_error = status_errors[status_value];
        return -1;
    }
    if (!CBS_get_asn1(&response, &bytes_explicit, CONTEXT_CONSTRUCTED(0)) ||
        !CBS_get_asn1(&bytes_explicit, &bytes, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&bytes, &oid, CBS_ASN1_OBJECT))
        return -1;
    if (CBS_len(&oid) != sizeof(ocsp_basic_oid) ||
        memcmp(CBS_data(&oid), ocsp_basic_oid, sizeof(ocsp_basic_oid)) != 0) {
        *out_error = "not a basic OCSP response";
        return -1;
    }
    if (!CBS_get_asn1(&bytes, &octets, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&octets, &basic, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&basic, &data, CBS_ASN1_SEQUENCE) ||
        !CBS_get_optional_asn1(&data, &ignored, NULL, CONTEXT_CONSTRUCTED(0)) || /* version */
        !CBS_get_any_asn1(&data, &ignored, NULL) || /* responderID */
        get_time(&data, &produced_at) != 0 ||
        !CBS_get_asn1(&data, &responses, CBS_ASN1_SEQUENCE))
        return -1;
    if (CBS_len(&responses) == 0) {
        *out_error = "the response holds no certificate status";
        return -1;
    }
    if (parse_single(&responses, out) != 0)
        return -1;
    *out_error = NULL;
    return 0;
}
