// SPDX-License-Identifier: GPL-2.0
/*
 * What the controller does to an application's socket: take a duplicate of
 * it, see whether a thread sleeps in read() on it, freeze the application
 * around the moment kTLS RX goes on, and close it cleanly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rpctls.h"
#include "daemon.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

int sock_take(pid_t pid, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), dup_fd;

	if (pidfd < 0)
		return -1;
	dup_fd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	close(pidfd);
	if (dup_fd >= 0)
		fcntl(dup_fd, F_SETFD, FD_CLOEXEC);
	return dup_fd;
}

uint64_t sock_cookie(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len))
		return 0;
	return c;
}

/*
 * A sock_diag socket in the network namespace of @fd: SOCK_DESTROY looks the
 * connection up in the namespace of the netlink socket, and the applications
 * we serve often live in another one than the controller.
 */
static int diag_socket_for(int fd)
{
	int ns = ioctl(fd, SIOCGSKNS), self, nfd;
	struct stat a, b;

	if (ns < 0)
		return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || fstat(ns, &a) || fstat(self, &b) || (a.st_ino == b.st_ino && a.st_dev == b.st_dev)) {
		nfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	} else if (setns(ns, CLONE_NEWNET)) {
		nfd = -1;
	} else {
		nfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		if (setns(self, CLONE_NEWNET)) {
			/* Sockets we create later would land in the wrong place. */
			log_err("cannot return to the controller's network namespace: %s", strerror(errno));
			abort();
		}
	}
	if (self >= 0)
		close(self);
	close(ns);
	return nfd;
}

/* Ask the kernel to abort the connection (SOCK_DESTROY): RST to the peer,
 * ECONNABORTED to the application, no byte accepted after. */
static int sock_destroy(int fd)
{
	struct sockaddr_storage la, ra;
	socklen_t ll = sizeof(la), rl = sizeof(ra);
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = { 0 };
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	char ack[512];
	uint64_t cookie = sock_cookie(fd);
	int nfd, ret = -1;
	ssize_t n;

	if (getsockname(fd, (struct sockaddr *)&la, &ll) || getpeername(fd, (struct sockaddr *)&ra, &rl))
		return -1;
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DESTROY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	msg.req.sdiag_family = (uint8_t)la.ss_family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = ~0u;
	if (la.ss_family == AF_INET) {
		struct sockaddr_in *l4 = (void *)&la, *r4 = (void *)&ra;

		msg.req.id.idiag_sport = l4->sin_port;
		msg.req.id.idiag_dport = r4->sin_port;
		msg.req.id.idiag_src[0] = l4->sin_addr.s_addr;
		msg.req.id.idiag_dst[0] = r4->sin_addr.s_addr;
	} else {
		struct sockaddr_in6 *l6 = (void *)&la, *r6 = (void *)&ra;

		msg.req.id.idiag_sport = l6->sin6_port;
		msg.req.id.idiag_dport = r6->sin6_port;
		memcpy(msg.req.id.idiag_src, &l6->sin6_addr, 16);
		memcpy(msg.req.id.idiag_dst, &r6->sin6_addr, 16);
	}
	msg.req.id.idiag_cookie[0] = (uint32_t)cookie;
	msg.req.id.idiag_cookie[1] = (uint32_t)(cookie >> 32);

	nfd = diag_socket_for(fd);
	if (nfd < 0)
		return -1;
	if (sendto(nfd, &msg, sizeof(msg), 0, (struct sockaddr *)&nl, sizeof(nl)) == (ssize_t)sizeof(msg)) {
		n = recv(nfd, ack, sizeof(ack), 0);
		if (n >= (ssize_t)(sizeof(struct nlmsghdr) + sizeof(int))) {
			struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)ack);

			if (((struct nlmsghdr *)ack)->nlmsg_type == NLMSG_ERROR) {
				ret = e->error ? -1 : 0;
				errno = -e->error;
			}
		}
	}
	close(nfd);
	return ret;
}

/* Throw away what the peer sent and the application has not read. */
static void sock_drain(int fd)
{
	char buf[16384];

	for (int i = 0; i < 4096; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

/* setsockopt() wants an int even where it reads none (EINVAL otherwise). */
int sock_filter_detach(int fd)
{
	int unused = 0;

	return setsockopt(fd, SOL_SOCKET, SO_DETACH_BPF, &unused, sizeof(unused));
}

/*
 * End a connection rpctls refuses or cannot carry, so that the application
 * sees an error or an end of file and never a byte that was not meant for it:
 * abort it (or, where the kernel cannot, shut it down), discard what is
 * queued, then let the application's poll see it (@lowat back to normal).
 */
void sock_close_clean(int fd, int lowat)
{
	if (sock_destroy(fd)) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		shutdown(fd, SHUT_RDWR);
	}
	sock_drain(fd);
	if (lowat > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
}

/*
 * Is a thread of @pid asleep in read(), readv(), recv*() on one of @fds? The
 * syscall file says "NR ARG0 ...", in hex, for a thread in a syscall.
 */
bool sock_blocked_reader(pid_t pid, const int *fds, int nfds)
{
	static const long readers[] = { 0 /* read */, 19 /* readv */, 45 /* recvfrom */, 47 /* recvmsg */,
					299 /* recvmmsg */, 17 /* pread64 */, 295 /* preadv */ };
	char path[64], line[256];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		long nr;
		unsigned long arg0;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		/* Asleep (S or D), not just passing through a syscall. */
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(line, sizeof(line), f) || !strstr(line, ") S ")) {
			bool d_state = strstr(line, ") D ") != NULL;

			fclose(f);
			if (!d_state)
				continue;
		} else {
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/syscall", pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) && sscanf(line, "%ld %lx", &nr, &arg0) == 2) {
			for (size_t i = 0; i < ARRAY_SIZE(readers); i++)
				for (int k = 0; nr == readers[i] && k < nfds; k++)
					found |= arg0 == (unsigned long)fds[k];
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* ---- the cgroup freezer ---- */

static char cg2_root[512];

static const char *cgroup2_mount(void)
{
	FILE *f;
	char line[1024];

	if (cg2_root[0])
		return cg2_root;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char mnt[512], fstype[64];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2"))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1) {
			snprintf(cg2_root, sizeof(cg2_root), "%s", mnt);
			break;
		}
	}
	fclose(f);
	return cg2_root[0] ? cg2_root : NULL;
}

/* The cgroup v2 directory of @pid, or -1 (root cgroup, no cgroup2, gone). */
int cg_dir_of(pid_t pid, char *buf, size_t len)
{
	char path[64], line[1024];
	const char *root = cgroup2_mount();
	FILE *f;
	int ret = -1;

	if (!root)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "0::/", 4) && line[4]) {
			snprintf(buf, len, "%s%s", root, line + 3);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int cg_write(const char *dir, const char *file, const char *v)
{
	char p[600];
	int fd, r;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = write(fd, v, strlen(v)) == (ssize_t)strlen(v) ? 0 : -1;
	close(fd);
	return r;
}

static int cg_frozen(const char *dir)
{
	char p[600], buf[512];
	int fd;
	ssize_t n;

	snprintf(p, sizeof(p), "%s/cgroup.events", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strstr(buf, "frozen 1") != NULL;
}

/* Freeze (@on) or thaw the cgroup directory @dir; freezing waits until every
 * task is frozen, at most @timeout_ms. */
int cg_freeze(const char *dir, bool on, int timeout_ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (cg_write(dir, "cgroup.freeze", on ? "1" : "0"))
		return -1;
	if (!on)
		return 0;
	while (cg_frozen(dir) != 1) {
		if (now_mono_ns() > end) {
			cg_write(dir, "cgroup.freeze", "0");
			errno = ETIMEDOUT;
			return -1;
		}
		usleep(200);
	}
	return 0;
}
