/* CRC-32 and Adler-32 of the UTF-8 bytes of one JSON string read from stdin. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned char buf[1 << 20];
static unsigned char text[1 << 20];

static int fail(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    return 1;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(unsigned char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { out[0] = 0xC0 | (cp >> 6); out[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        out[0] = 0xE0 | (cp >> 12); out[1] = 0x80 | ((cp >> 6) & 0x3F);
        out[2] = 0x80 | (cp & 0x3F); return 3;
    }
    out[0] = 0xF0 | (cp >> 18); out[1] = 0x80 | ((cp >> 12) & 0x3F);
    out[2] = 0x80 | ((cp >> 6) & 0x3F); out[3] = 0x80 | (cp & 0x3F); return 4;
}

static int read_hex4(const unsigned char *p, size_t n, size_t i, uint32_t *out) {
    if (i + 4 > n) return 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(p[i + k]);
        if (h < 0) return 0;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 1;
}

int main(void) {
    size_t n = fread(buf, 1, sizeof buf, stdin);
    size_t i = 0, len = 0;
    while (i < n && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' || buf[i] == '\r')) i++;
    if (i >= n || buf[i] != '"') return fail("input must be a JSON string");
    i++;
    for (;;) {
        if (i >= n) return fail("unterminated JSON string");
        unsigned char c = buf[i++];
        if (c == '"') break;
        if (c != '\\') { text[len++] = c; continue; }
        if (i >= n) return fail("unterminated escape");
        c = buf[i++];
        switch (c) {
            case '"': case '\\': case '/': text[len++] = c; break;
            case 'b': text[len++] = '\b'; break;
            case 'f': text[len++] = '\f'; break;
            case 'n': text[len++] = '\n'; break;
            case 'r': text[len++] = '\r'; break;
            case 't': text[len++] = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (!read_hex4(buf, n, i, &cp)) return fail("bad \\u escape");
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && buf[i] == '\\' &&
                    buf[i + 1] == 'u' && read_hex4(buf, n, i + 2, &lo) &&
                    lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                len += put_utf8(text + len, cp);
                break;
            }
            default: return fail("bad escape in JSON string");
        }
    }
    uint32_t crc = 0xFFFFFFFFu, a = 1, b = 0;
    for (size_t k = 0; k < len; k++) {
        crc ^= text[k];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        a = (a + text[k]) % 65521u;
        b = (b + a) % 65521u;
    }
    crc ^= 0xFFFFFFFFu;
    printf("{\"crc32\": %u, \"crc32_hex\": \"%08x\", \"adler32\": %u, \"length\": %zu}\n",
           crc, crc, (b << 16) | a, len);
    return 0;
}
