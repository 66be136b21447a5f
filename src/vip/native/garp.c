/*
 * understudy-garp: gratuitous ARP without a process per packet. The agent
 * keeps one running and writes a line per announcement:
 *
 *     IFACE ADDRESS\n        e.g. "eth0 198.18.1.100"
 *
 * and reads one line back: "ok" once the packet is handed to the kernel, or
 * "error <what>" (a bad line, an unknown interface, no permission). One
 * RFC 5227 announcement per line: an ARP request, broadcast, with sender
 * and target protocol address both ADDRESS, sender hardware address the
 * interface's own, target hardware address zero (as `arping -U` does it,
 * minus the second of waiting before it exits). Exits 0 at end of input.
 * Needs CAP_NET_RAW (the agent runs as root, as for `ip addr add`).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE_MAX_BYTES 128

static int packet_fd = -1;

/* "ok", or "error " and the parts given. */
static void reply(const char *what, const char *detail) {
  if (!what) fputs("ok\n", stdout);
  else printf("error %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  fflush(stdout);
}

/* One announcement; on failure, a reason in why (static text or errno's). */
static int announce(const char *ifname, const char *addr, const char **why) {
  struct in_addr ip;
  if (strlen(ifname) == 0 || strlen(ifname) >= IFNAMSIZ) {
    *why = "interface name must be 1-15 bytes";
    return -1;
  }
  if (inet_pton(AF_INET, addr, &ip) != 1) {
    *why = "not an IPv4 address";
    return -1;
  }
  unsigned int index = if_nametoindex(ifname);
  if (index == 0) {
    *why = strerror(errno);
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ctl < 0 || ioctl(ctl, SIOCGIFHWADDR, &ifr) < 0) {
    *why = strerror(errno);
    if (ctl >= 0) close(ctl);
    return -1;
  }
  close(ctl);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    *why = "not an Ethernet interface";
    return -1;
  }
  if (packet_fd < 0) {
    packet_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (packet_fd < 0) {
      *why = strerror(errno);
      return -1;
    }
  }
  struct arphdr ah = {
      .ar_hrd = htons(ARPHRD_ETHER),
      .ar_pro = htons(ETH_P_IP),
      .ar_hln = 6,
      .ar_pln = 4,
      .ar_op = htons(ARPOP_REQUEST),
  };
  unsigned char pkt[sizeof ah + 20];
  memcpy(pkt, &ah, sizeof ah);
  unsigned char *p = pkt + sizeof ah;
  memcpy(p, ifr.ifr_hwaddr.sa_data, 6); /* sender hardware: ours */
  memcpy(p + 6, &ip, 4);                /* sender protocol: the address */
  memset(p + 10, 0, 6);                 /* target hardware: zero (RFC 5227) */
  memcpy(p + 16, &ip, 4);               /* target protocol: the address */
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = (int)index;
  to.sll_halen = 6;
  memset(to.sll_addr, 0xff, 6);
  if (sendto(packet_fd, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof pkt) {
    *why = strerror(errno);
    return -1;
  }
  return 0;
}

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  /* One reply per line read, whatever it holds (a NUL inside, no final newline). */
  while ((n = getline(&line, &cap, stdin)) > 0) {
    if (line[n - 1] == '\n') line[--n] = '\0';
    if ((size_t)n >= LINE_MAX_BYTES || memchr(line, '\0', (size_t)n)) {
      reply("line too long or not text", NULL);
      continue;
    }
    char *space = strchr(line, ' ');
    if (!space || strchr(space + 1, ' ')) {
      reply("expected: IFACE ADDRESS", NULL);
      continue;
    }
    *space = '\0';
    const char *why = "";
    if (announce(line, space + 1, &why) == 0) reply(NULL, NULL);
    else reply(line, why);
  }
  free(line);
  return 0;
}
