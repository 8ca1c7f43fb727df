// shoal::client, the C++ client of shoald's socket (daemon/PROTOCOL.md): print
// the alive members and then every failure as it happens.
//   shoal-client-example [SOCKET]      (default /run/shoal/shoald.sock)
// In a project of your own: find_package(shoal), link shoal::client and
// #include <shoal/client/client.hpp>.
#include <cstdio>

#include <client.hpp>

int main(int argc, char** argv) {
  using namespace shoal::daemon;
  client::options o;
  if (argc > 1) o.socket_path = argv[1];
  reply r;
  auto c = client::connect(o, r);
  if (!c) {
    std::fprintf(stderr, "cannot reach shoald at %s: %s\n", o.socket_path.c_str(),
                 r.error ? r.error->message.c_str() : r.ec.message().c_str());
    return 1;
  }
  r = c->call("members", json{{"status", {"alive"}}});
  if (!r.ok()) {
    std::fprintf(stderr, "members: %s\n",
                 r.error ? r.error->message.c_str() : r.ec.message().c_str());
    return 1;
  }
  for (const auto& m : r.result["members"])
    std::printf("%s %s:%u\n", m["name"].get<std::string>().c_str(),
                m["addr"].get<std::string>().c_str(), m["port"].get<unsigned>());
  std::uint64_t id = 0;
  if (!c->open_stream({"failed"}, id).ok()) return 1;
  for (;;) {
    stream_message ev;
    if (const auto ec = c->next_event(ev, std::chrono::hours(24))) {
      if (ec == client_errc::timed_out) continue;
      std::fprintf(stderr, "stream ended: %s\n", ec.message().c_str());
      return 1;
    }
    if (ev.what == stream_message::kind::lagged) return 1;
    std::printf("failed: %s\n", ev.body["member"]["name"].get<std::string>().c_str());
  }
}
