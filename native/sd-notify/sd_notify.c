/*
 * sd_notify for deckhand-agent: one datagram to the service manager's
 * $NOTIFY_SOCKET ("READY=1", "WATCHDOG=1", "STOPPING=1", ...), sent from the
 * agent's own process, so systemd attributes it to the main PID without the
 * race of the `systemd-notify` program (which may exit before systemd has
 * looked up who sent the message).
 *
 * Node has no unix datagram sockets, hence this addon. It speaks the
 * documented notify protocol (sd_notify(3): a path or an abstract "@" name,
 * one datagram per message) without linking libsystemd, so it builds
 * anywhere and needs nothing at run time but libc. Node-API only: the same
 * binary loads on every Node release with Node-API 8.
 *
 * notify(message: string): number
 *   1   sent
 *   0   no $NOTIFY_SOCKET (not started by systemd, or not Type=notify)
 *  <0   -errno of the failure (e.g. -ECONNREFUSED)
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>

#define MAX_MESSAGE 4096

static int send_notify(const char *msg, size_t len) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || path[0] == '\0') return 0;
  if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t plen = strlen(path);
  if (plen >= sizeof sa.sun_path) return -E2BIG;
  memcpy(sa.sun_path, path, plen);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0'; /* abstract namespace */
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int result = n < 0 ? -errno : 1;
  close(fd);
  return result;
}

static napi_value Notify(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "notify(message) needs a string");
    return NULL;
  }
  char buf[MAX_MESSAGE + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(message) needs a string");
    return NULL;
  }
  if (len >= MAX_MESSAGE) {
    napi_throw_range_error(env, NULL, "notify message too long");
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, send_notify(buf, len), &out);
  return out;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "notify", NAPI_AUTO_LENGTH, Notify, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "notify", fn) != napi_ok) return NULL;
  return exports;
}
