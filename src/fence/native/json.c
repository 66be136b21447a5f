/*
 * The guard's wire format: one JSON message per line, both ways. A strict
 * RFC 8259 parser into a fixed node pool (no allocation: nothing here can
 * fail for lack of memory or grow with the input beyond one line), and a
 * string writer for replies. Strings containing \u0000 are refused: they are
 * used as C strings (paths, argv).
 */
#include <stdlib.h>
#include <string.h>

#include "guard.h"

#define JSON_MAX_DEPTH 16

struct jp {
  const char *s, *e;
  struct jdoc *d;
  int depth;
  const char *err;
};

static struct jval *node(struct jp *p, enum jtype t) {
  if (p->d->used >= JSON_MAX_NODES) {
    p->err = "too many values";
    return NULL;
  }
  struct jval *v = &p->d->nodes[p->d->used++];
  memset(v, 0, sizeof *v);
  v->type = t;
  return v;
}

static void ws(struct jp *p) {
  while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static bool lit(struct jp *p, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(p->e - p->s) < n || memcmp(p->s, w, n) != 0) return false;
  p->s += n;
  return true;
}

static int hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static bool put(struct jp *p, char c) {
  if (p->d->sused + 1 >= sizeof p->d->strings) {
    p->err = "strings too long";
    return false;
  }
  p->d->strings[p->d->sused++] = c;
  return true;
}

static bool put_utf8(struct jp *p, unsigned cp) {
  if (cp < 0x80) return put(p, (char)cp);
  if (cp < 0x800) return put(p, (char)(0xC0 | (cp >> 6))) && put(p, (char)(0x80 | (cp & 0x3F)));
  if (cp < 0x10000)
    return put(p, (char)(0xE0 | (cp >> 12))) && put(p, (char)(0x80 | ((cp >> 6) & 0x3F))) && put(p, (char)(0x80 | (cp & 0x3F)));
  return put(p, (char)(0xF0 | (cp >> 18))) && put(p, (char)(0x80 | ((cp >> 12) & 0x3F))) && put(p, (char)(0x80 | ((cp >> 6) & 0x3F))) &&
         put(p, (char)(0x80 | (cp & 0x3F)));
}

/* At the opening quote; returns the decoded, NUL-terminated string in d->strings. */
static const char *string(struct jp *p) {
  if (p->s >= p->e || *p->s != '"') {
    p->err = "expected a string";
    return NULL;
  }
  p->s++;
  const char *start = &p->d->strings[p->d->sused];
  while (p->s < p->e && *p->s != '"') {
    unsigned char c = (unsigned char)*p->s++;
    if (c < 0x20) {
      p->err = "control character in a string";
      return NULL;
    }
    if (c != '\\') {
      if (!put(p, (char)c)) return NULL;
      continue;
    }
    if (p->s >= p->e) break;
    char esc = *p->s++;
    const char *simple = strchr("\"\\/bfnrt", esc);
    if (esc && simple) {
      static const char out[] = "\"\\/\b\f\n\r\t";
      if (!put(p, out[simple - "\"\\/bfnrt"])) return NULL;
      continue;
    }
    if (esc != 'u' || p->e - p->s < 4 || hex4(p->s) < 0) {
      p->err = "bad escape in a string";
      return NULL;
    }
    unsigned cp = (unsigned)hex4(p->s);
    p->s += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      int lo = (p->e - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') ? hex4(p->s + 2) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF) {
        p->err = "unpaired surrogate in a string";
        return NULL;
      }
      p->s += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      p->err = "unpaired surrogate in a string";
      return NULL;
    }
    if (cp == 0) {
      p->err = "NUL in a string";
      return NULL;
    }
    if (!put_utf8(p, cp)) return NULL;
  }
  if (p->s >= p->e) {
    p->err = "unterminated string";
    return NULL;
  }
  p->s++;
  if (!put(p, '\0')) return NULL;
  return start;
}

static bool digits(struct jp *p) {
  const char *b = p->s;
  while (p->s < p->e && *p->s >= '0' && *p->s <= '9') p->s++;
  return p->s > b;
}

static struct jval *number(struct jp *p) {
  const char *b = p->s;
  if (p->s < p->e && *p->s == '-') p->s++;
  if (p->s < p->e && *p->s == '0') p->s++;
  else if (!digits(p)) goto bad;
  if (p->s < p->e && *p->s == '.') {
    p->s++;
    if (!digits(p)) goto bad;
  }
  if (p->s < p->e && (*p->s == 'e' || *p->s == 'E')) {
    p->s++;
    if (p->s < p->e && (*p->s == '+' || *p->s == '-')) p->s++;
    if (!digits(p)) goto bad;
  }
  char tmp[64];
  size_t n = (size_t)(p->s - b);
  if (n >= sizeof tmp) goto bad;
  memcpy(tmp, b, n);
  tmp[n] = '\0';
  struct jval *v = node(p, J_NUM);
  if (v) v->num = strtod(tmp, NULL);
  return v;
bad:
  p->err = "bad number";
  return NULL;
}

static struct jval *value(struct jp *p);

static struct jval *container(struct jp *p, bool obj) {
  if (++p->depth > JSON_MAX_DEPTH) {
    p->err = "nested too deep";
    return NULL;
  }
  struct jval *v = node(p, obj ? J_OBJ : J_ARR);
  if (!v) return NULL;
  p->s++;
  ws(p);
  struct jval **tail = &v->child;
  if (p->s < p->e && *p->s == (obj ? '}' : ']')) {
    p->s++;
    p->depth--;
    return v;
  }
  for (;;) {
    const char *key = NULL;
    if (obj) {
      ws(p);
      if (!(key = string(p))) return NULL;
      ws(p);
      if (p->s >= p->e || *p->s != ':') {
        p->err = "expected ':'";
        return NULL;
      }
      p->s++;
    }
    struct jval *m = value(p);
    if (!m) return NULL;
    m->key = key;
    *tail = m;
    tail = &m->next;
    ws(p);
    if (p->s < p->e && *p->s == ',') {
      p->s++;
      continue;
    }
    if (p->s < p->e && *p->s == (obj ? '}' : ']')) {
      p->s++;
      p->depth--;
      return v;
    }
    p->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
    return NULL;
  }
}

static struct jval *value(struct jp *p) {
  ws(p);
  if (p->s >= p->e) {
    p->err = "unexpected end";
    return NULL;
  }
  switch (*p->s) {
    case '{': return container(p, true);
    case '[': return container(p, false);
    case '"': {
      const char *s = string(p);
      struct jval *v = s ? node(p, J_STR) : NULL;
      if (v) v->str = s;
      return v;
    }
    case 't':
    case 'f': {
      bool t = *p->s == 't';
      if (!lit(p, t ? "true" : "false")) break;
      struct jval *v = node(p, J_BOOL);
      if (v) v->b = t;
      return v;
    }
    case 'n':
      if (!lit(p, "null")) break;
      return node(p, J_NULL);
    default:
      if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) return number(p);
  }
  p->err = "unexpected character";
  return NULL;
}

struct jval *json_parse(struct jdoc *d, const char *text, size_t len, const char **err) {
  struct jp p = {.s = text, .e = text + len, .d = d, .depth = 0, .err = NULL};
  d->used = 0;
  d->sused = 0;
  struct jval *v = value(&p);
  if (v) {
    ws(&p);
    if (p.s != p.e) {
      p.err = "trailing characters";
      v = NULL;
    }
  }
  if (!v) *err = p.err ? p.err : "invalid";
  return v;
}

const struct jval *json_get(const struct jval *obj, const char *key) {
  if (!obj || obj->type != J_OBJ) return NULL;
  const struct jval *found = NULL;
  for (const struct jval *m = obj->child; m; m = m->next)
    if (strcmp(m->key, key) == 0) found = m; /* the last one wins, as in JSON.parse */
  return found;
}

void json_put_str(char *buf, size_t cap, size_t *len, const char *s) {
  /* Room for the worst escape (\u00XX) plus the closing quote and NUL. */
  if (*len + 2 >= cap) return;
  buf[(*len)++] = '"';
  for (; *s && *len + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[(*len)++] = '\\';
      buf[(*len)++] = (char)c;
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      memcpy(buf + *len, "\\u00", 4);
      *len += 4;
      buf[(*len)++] = hex[c >> 4];
      buf[(*len)++] = hex[c & 15];
    } else {
      buf[(*len)++] = (char)c;
    }
  }
  buf[(*len)++] = '"';
  buf[*len] = '\0';
}
