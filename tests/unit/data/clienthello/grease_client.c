/* grease_client: a BoringSSL client that sends a Chrome-like ClientHello with
 * GREASE values (RFC 8701), for capture.py. No OpenSSL-based client sends
 * GREASE. Usage: grease_client HOST PORT SNI */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

int main(int argc, char **argv)
{
    static const uint8_t alpn[] = "\x02h2\x08http/1.1";
    struct sockaddr_in addr = {.sin_family = AF_INET};
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;

    if (argc != 4)
        return 2;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        return 1;
    ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_grease_enabled(ctx, 1);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, argv[3]);
    SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
    SSL_enable_ocsp_stapling(ssl);
    SSL_enable_signed_cert_timestamps(ssl);
    SSL_connect(ssl); /* fails: the capture server closes after the hello */
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
