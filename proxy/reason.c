/* reason: termination reason tokens. See reason.h. */
#include "reason.h"

#include <stdio.h>

static const char *const reason_names[END_REASON_COUNT] = {
    [END_PROTOCOL_VERSION] = "protocol_version",
    [END_NO_SHARED_CIPHER] = "no_shared_cipher",
    [END_NO_SHARED_GROUP] = "no_shared_group",
    [END_HTTP_REQUEST_ON_TLS] = "http_request_on_tls_port",
    [END_CLIENT_ALERT] = "client_alert",
    [END_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [END_CLIENT_CLOSED] = "client_closed",
    [END_TCP_RESET] = "tcp_reset",
    [END_MALFORMED] = "malformed",
    [END_UNKNOWN_SNI] = "unknown_sni",
    [END_NO_APPLICATION_PROTOCOL] = "no_application_protocol",
    [END_CLIENT_CERT_MISSING] = "client_cert_missing",
    [END_CLIENT_CERT_UNTRUSTED] = "client_cert_untrusted",
    [END_CLIENT_CERT_EXPIRED] = "client_cert_expired",
    [END_CLIENT_CERT_REVOKED] = "client_cert_revoked",
    [END_TLS_ERROR] = "tls_error",
    [END_DONE] = "done",
    [END_IDLE_TIMEOUT] = "idle_timeout",
    [END_HALF_CLOSED_TIMEOUT] = "half_closed_timeout",
    [END_BACKEND_CONNECT_FAILED] = "backend_connect_failed",
    [END_BACKEND_CONNECT_TIMEOUT] = "backend_connect_timeout",
    [END_CLIENT_RESET] = "client_reset",
    [END_CLIENT_TLS_ERROR] = "client_tls_error",
    [END_BACKEND_RESET] = "backend_reset",
    [END_SHUTDOWN] = "shutdown",
    [END_OUT_OF_MEMORY] = "out_of_memory",
    [END_HTTP2_ABUSE] = "http2_abuse",
    [END_PROXY_HEADER_REJECTED] = "proxy_header_rejected",
};

/* Alert names as RFC 8446 section 6 (and RFC 5246 for the older ones)
 * spell them, so a log line can be looked up in the RFC. */
static const char *const alert_names[256] = {
    [0] = "close_notify",
    [10] = "unexpected_message",
    [20] = "bad_record_mac",
    [21] = "decryption_failed",
    [22] = "record_overflow",
    [30] = "decompression_failure",
    [40] = "handshake_failure",
    [41] = "no_certificate",
    [42] = "bad_certificate",
    [43] = "unsupported_certificate",
    [44] = "certificate_revoked",
    [45] = "certificate_expired",
    [46] = "certificate_unknown",
    [47] = "illegal_parameter",
    [48] = "unknown_ca",
    [49] = "access_denied",
    [50] = "decode_error",
    [51] = "decrypt_error",
    [60] = "export_restriction",
    [70] = "protocol_version",
    [71] = "insufficient_security",
    [80] = "internal_error",
    [86] = "inappropriate_fallback",
    [90] = "user_canceled",
    [100] = "no_renegotiation",
    [109] = "missing_extension",
    [110] = "unsupported_extension",
    [111] = "certificate_unobtainable",
    [112] = "unrecognized_name",
    [113] = "bad_certificate_status_response",
    [114] = "bad_certificate_hash_value",
    [115] = "unknown_psk_identity",
    [116] = "certificate_required",
    [120] = "no_application_protocol",
    [121] = "ech_required",
};

bool reason_is_handshake_failure(enum end_reason reason)
{
    return reason <= END_TLS_ERROR;
}

const char *reason_alert_name(uint8_t alert) { return alert_names[alert]; }

const char *reason_name(enum end_reason reason, uint8_t alert, char *out,
                        size_t out_len)
{
    if (reason != END_CLIENT_ALERT) {
        snprintf(out, out_len, "%s", reason_names[reason]);
        return out;
    }
    const char *alert_name = alert_names[alert];
    if (alert_name != NULL)
        snprintf(out, out_len, "client_alert:%s", alert_name);
    else
        snprintf(out, out_len, "client_alert:%u", alert);
    return out;
}
