#include "sluice/dbos/testing/pg_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace sluice::dbos::testing {
namespace {

Result<int> free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return errno_status(errno, "socket");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return errno_status(errno, "bind to a free loopback port");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

}  // namespace

std::string pg_bin_dir() {
  for (const char* d : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"}) {
    if (std::filesystem::exists(std::string(d) + "/initdb")) {
      return d;
    }
  }
  return "";
}

PgServer::~PgServer() {
  (void)stop();
}

std::string PgServer::as_user(const std::string& cmd) const {
  if (!as_postgres_) {
    return cmd;
  }
  return fmt::format("runuser -u postgres -- {}", cmd);
}

Status PgServer::run(const std::string& cmd) {
  const std::string full = as_user(cmd) + fmt::format(" >>{}/setup.log 2>&1", dir_);
  int rc = std::system(full.c_str());
  if (rc != 0) {
    return unavailable(fmt::format("`{}` failed (exit {}); see {}/setup.log", cmd, rc, dir_));
  }
  return {};
}

Status PgServer::start(const std::string& extra_conf) {
  const std::string bin = pg_bin_dir();
  if (bin.empty()) {
    return unimplemented("PostgreSQL 15 is not installed (postgresql-15); run tools/setup.sh");
  }
  char tmpl[] = "/tmp/sluice-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return errno_status(errno, "mkdtemp for the PostgreSQL data directory");
  }
  dir_ = tmpl;
  as_postgres_ = ::geteuid() == 0;
  if (as_postgres_) {
    struct passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return failed_precondition("running as root needs the `postgres` user to start a server");
    }
    if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return errno_status(errno, fmt::format("chown {} to postgres", dir_));
    }
  }
  SLUICE_RETURN_IF_ERROR(start_watchdog());
  SLUICE_ASSIGN_OR_RETURN(port_, free_port());
  SLUICE_RETURN_IF_ERROR(
      run(fmt::format("{}/initdb -D {}/data -A trust -U postgres --no-sync -E UTF8", bin, dir_)));
  const std::string conf = fmt::format(
      "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n"
      "max_connections = 200\nshared_buffers = 128MB\nfsync = on\n{}\n",
      port_, dir_, extra_conf);
  const std::string append = fmt::format("sh -c \"cat >> {}/data/postgresql.conf\"", dir_);
  FILE* f = ::popen(as_user(append).c_str(), "w");
  if (f == nullptr) {
    return errno_status(errno, "writing postgresql.conf");
  }
  std::fwrite(conf.data(), 1, conf.size(), f);
  if (::pclose(f) != 0) {
    return io_error(fmt::format("cannot append to {}/data/postgresql.conf", dir_));
  }
  return start_again();
}

// A child that outlives this process only to shut the server down and remove its directory. It
// waits for the end of a pipe whose write end only this process holds (close-on-exec, so neither
// the server nor any command this process runs keeps it), and that end closes however this
// process ends: stop(), a test binary that never destroys its server, a crash, kill -9.
Status PgServer::start_watchdog() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return errno_status(errno, "pipe for the PostgreSQL server's watchdog");
  }
  // Built before fork: the child only moves a descriptor and execs. It is a shell from then on
  // (not a copy of the test binary, so a kill by the binary's name spares it) that waits on
  // descriptor 3 for the end of the pipe.
  const std::string script = fmt::format(
      "cat <&3 >/dev/null 2>&1; {} >/dev/null 2>&1; rm -rf {}",
      as_user(fmt::format("{}/pg_ctl -D {}/data -w -t 60 -m immediate stop", pg_bin_dir(), dir_)),
      dir_);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return errno_status(e, "fork of the PostgreSQL server's watchdog");
  }
  if (pid == 0) {
    ::setsid();  // Ctrl-C to the test's process group does not reach it
    if (fds[0] == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(fds[0], 3);  // the copy is not close-on-exec
    }
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;
  return {};
}

void PgServer::end_watchdog() {
  if (watchdog_fd_ < 0) {
    return;
  }
  ::close(watchdog_fd_);
  watchdog_fd_ = -1;
  int status = 0;
  while (::waitpid(watchdog_pid_, &status, 0) < 0 && errno == EINTR) {
  }
  watchdog_pid_ = -1;
}

Status PgServer::start_again() {
  SLUICE_RETURN_IF_ERROR(run(fmt::format("{}/pg_ctl -D {}/data -l {}/server.log -w -t 60 start",
                                         pg_bin_dir(), dir_, dir_)));
  running_ = true;
  return {};
}

Status PgServer::stop_keep_data() {
  if (!running_) {
    return {};
  }
  running_ = false;
  return run(fmt::format("{}/pg_ctl -D {}/data -w -t 60 -m fast stop", pg_bin_dir(), dir_));
}

Status PgServer::restart() {
  SLUICE_RETURN_IF_ERROR(stop_keep_data());
  return start_again();
}

Status PgServer::stop() {
  if (dir_.empty()) {
    return {};
  }
  Status s = stop_keep_data();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  dir_.clear();
  end_watchdog();  // nothing left for it to do
  return s;
}

std::string PgServer::url() const {
  return fmt::format("postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout=5", port_);
}

}  // namespace sluice::dbos::testing
