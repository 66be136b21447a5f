# Shared by the native helpers (fence/native, vip/native, daemon/native), each
# built by `npm run build` with OUT=dist/<dir>. Hardening flags as Debian's
# dpkg-buildflags (lintian checks them in the .deb).
CC ?= cc
CFLAGS ?= -O2
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -D_GNU_SOURCE -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
# -s: stripped (lintian: unstripped-binary-or-object); a debug build: make LDFLAGS_STRIP=
LDFLAGS_STRIP ?= -s
LDFLAGS += -pie -Wl,-z,relro,-z,now $(LDFLAGS_STRIP)

# $(call link,SOURCES): compile and link $@, then drop .comment as dh_strip
# does (lintian: binary-has-unneeded-section); written to a temp name first.
define link
	@mkdir -p $(OUT)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@.tmp $(1) $(LDLIBS)
	objcopy --remove-section=.comment $@.tmp
	mv $@.tmp $@
endef
