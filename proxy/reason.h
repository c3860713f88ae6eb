/* reason: why a connection ended, as stable tokens for logs and metrics.
 *
 * Each connection ends with exactly one reason, logged once. The tokens are
 * an interface: operators grep and alert on them, so a token is never
 * renamed, only added. The README's reason table explains each one. */
#ifndef TLSTERM_REASON_H
#define TLSTERM_REASON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum end_reason {
    /* Handshake failures: the client never reached the backend. */
    END_PROTOCOL_VERSION,       /* client's versions outside the policy */
    END_NO_SHARED_CIPHER,       /* client's TLS 1.2 suites outside the policy */
    END_NO_SHARED_GROUP,        /* client's key-exchange groups outside the policy */
    END_HTTP_REQUEST_ON_TLS,    /* plain HTTP sent to the TLS port */
    END_CLIENT_ALERT,           /* the client aborted with an alert (see alert) */
    END_HANDSHAKE_TIMEOUT,      /* no complete handshake within the deadline */
    END_CLIENT_CLOSED,          /* EOF before the handshake ended */
    END_TCP_RESET,              /* RST before the handshake ended */
    END_MALFORMED,              /* bytes that are not a well-formed TLS handshake */
    END_UNKNOWN_SNI,            /* sni_strict: no SNI, or no certificate for it */
    END_NO_APPLICATION_PROTOCOL, /* alpn_required: no ALPN protocol in common */
    END_CLIENT_CERT_MISSING,    /* client_auth required, no certificate sent */
    END_CLIENT_CERT_UNTRUSTED,  /* client certificate does not chain to client_auth.ca */
    END_CLIENT_CERT_EXPIRED,    /* client certificate outside its validity period */
    END_CLIENT_CERT_REVOKED,    /* client certificate listed in client_auth.crl */
    END_TLS_ERROR,              /* any other handshake error (the last of them) */
    /* After the handshake. */
    END_DONE,                   /* both directions finished normally */
    END_IDLE_TIMEOUT,           /* no bytes either way for the idle timeout */
    END_HALF_CLOSED_TIMEOUT,    /* one direction ended, no bytes for timeouts.half_closed */
    END_BACKEND_CONNECT_FAILED, /* the backend refused or was unreachable */
    END_BACKEND_CONNECT_TIMEOUT,
    END_CLIENT_RESET,           /* client socket error after the handshake */
    END_CLIENT_TLS_ERROR,       /* TLS error after the handshake (bad record, alert) */
    END_BACKEND_RESET,          /* backend socket error */
    END_SHUTDOWN,               /* closed at the end of the drain deadline */
    END_OUT_OF_MEMORY,
    END_HTTP2_ABUSE,            /* an HTTP/2 attack limit (http2_abuse line) */
    END_PROXY_HEADER_REJECTED,  /* accept_proxy refused it (proxy_header_rejected line) */
    END_REASON_COUNT
};

/* reason_is_handshake_failure returns true for the reasons that end a
 * connection before its handshake completed. */
bool reason_is_handshake_failure(enum end_reason reason);

/* reason_name writes the token for |reason| into |out| of |out_len| bytes and
 * returns |out|. For END_CLIENT_ALERT the token is "client_alert:" followed by
 * the RFC 8446 name of |alert| (e.g. "client_alert:unknown_ca"), or its
 * number when the alert is unknown. 48 bytes are always enough. */
const char *reason_name(enum end_reason reason, uint8_t alert, char *out,
                        size_t out_len);

/* reason_alert_name returns the RFC 8446 name of TLS alert |alert|, or NULL
 * when it has none. */
const char *reason_alert_name(uint8_t alert);

#endif
