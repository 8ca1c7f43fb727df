// memberlist-loopback: N hashicorp/memberlist nodes in one Go process on
// 127.0.0.1, measured on real sockets, to compare with shoal-loopback
// (bench/shoal_loopback.cpp) in the same run. One JSON object on stdout,
// progress on stderr.
//
//	memberlist-loopback [--nodes 64] [--join-interval 20ms] [--join-target seed|random]
//	                    [--config lan|local] [--settle-timeout 120s] [--window 60s]
//	                    [--bind 127.0.0.1] [--base-port 0] [--seed 1] [--log] [--json]
//
// Written against memberlist 0.2.2 (Debian's golang-github-hashicorp-memberlist-dev)
// and built in GOPATH mode by bench/memberlist/build.sh; see bench/memberlist/README.md.
// Exit 0 when the cluster converged, 1 when it did not within --settle-timeout,
// 2 on bad usage or a start failure.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/memberlist"
)

// Set by build.sh with -ldflags "-X main.memberlistVersion=...".
var memberlistVersion = "unknown"

// ---------------------------------------------------------------------------
// Counters shared by every node of the process (atomics).

type counters struct {
	udpBytesOut, udpPacketsOut     uint64 // transport WriteTo*: UDP payloads handed to the socket
	tcpBytesOut, tcpBytesIn        uint64 // stream bytes written / read, both ends of every stream
	streamsDialed, streamsAccepted uint64
	// From memberlist's go-metrics calls (our sink).
	mUDPBytesIn, mUDPBytesOut, mTCPBytesOut uint64 // memberlist.udp.received / udp.sent / tcp.sent
	mSuspect, mDead, mAlive                 uint64 // memberlist.msg.suspect / dead / alive
	mDegradedProbe, mDegradedTimeout        uint64
	mTCPAccept, mTCPConnect                 uint64
	// From the EventDelegate of every node.
	evJoin, evLeave, evUpdate uint64
	// From memberlist's log lines (counted, not printed unless --log).
	logLines, logSuspect, logFailed, logRefute, logErr, logWarn uint64
	logPushPull                                                 uint64
}

var ctr counters

type snapshot map[string]uint64

func (c *counters) snap() snapshot {
	l := func(p *uint64) uint64 { return atomic.LoadUint64(p) }
	return snapshot{
		"udp_bytes_out":           l(&c.udpBytesOut),
		"udp_packets_out":         l(&c.udpPacketsOut),
		"udp_bytes_in":            l(&c.mUDPBytesIn),
		"tcp_bytes_out":           l(&c.tcpBytesOut),
		"tcp_bytes_in":            l(&c.tcpBytesIn),
		"streams_dialed":          l(&c.streamsDialed),
		"streams_accepted":        l(&c.streamsAccepted),
		"metric_udp_sent_bytes":   l(&c.mUDPBytesOut),
		"metric_tcp_sent_bytes":   l(&c.mTCPBytesOut),
		"metric_tcp_accept":       l(&c.mTCPAccept),
		"metric_tcp_connect":      l(&c.mTCPConnect),
		"suspicions":              l(&c.mSuspect),
		"deaths":                  l(&c.mDead),
		"alive_msgs_applied":      l(&c.mAlive),
		"degraded_probes":         l(&c.mDegradedProbe),
		"degraded_timeouts":       l(&c.mDegradedTimeout),
		"event_join":              l(&c.evJoin),
		"event_leave":             l(&c.evLeave),
		"event_update":            l(&c.evUpdate),
		"log_lines":               l(&c.logLines),
		"log_suspect_raised":      l(&c.logSuspect),
		"log_marked_failed":       l(&c.logFailed),
		"log_refutes":             l(&c.logRefute),
		"log_err":                 l(&c.logErr),
		"log_warn":                l(&c.logWarn),
		"log_push_pull_initiated": l(&c.logPushPull),
	}
}

func delta(a, b snapshot) snapshot {
	d := snapshot{}
	for k, v := range b {
		d[k] = v - a[k]
	}
	return d
}

// ---------------------------------------------------------------------------
// go-metrics sink: memberlist reports bytes received on UDP, suspect/dead
// transitions and more through the global armon/go-metrics instance.

type countingSink struct{}

func (countingSink) SetGauge(key []string, val float32)                                    {}
func (countingSink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label)  {}
func (countingSink) EmitKey(key []string, val float32)                                     {}
func (countingSink) AddSample(key []string, val float32)                                   {}
func (countingSink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {}
func (s countingSink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	s.IncrCounter(key, val)
}
func (countingSink) IncrCounter(key []string, val float32) {
	if len(key) != 3 || key[0] != "memberlist" {
		return
	}
	v := uint64(val)
	var p *uint64
	switch key[1] + "." + key[2] {
	case "udp.received":
		p = &ctr.mUDPBytesIn
	case "udp.sent":
		p = &ctr.mUDPBytesOut
	case "tcp.sent":
		p = &ctr.mTCPBytesOut
	case "tcp.accept":
		p = &ctr.mTCPAccept
	case "tcp.connect":
		p = &ctr.mTCPConnect
	case "msg.suspect":
		p = &ctr.mSuspect
	case "msg.dead":
		p = &ctr.mDead
	case "msg.alive":
		p = &ctr.mAlive
	case "degraded.probe":
		p = &ctr.mDegradedProbe
	case "degraded.timeout":
		p = &ctr.mDegradedTimeout
	default:
		return
	}
	atomic.AddUint64(p, v)
}

// ---------------------------------------------------------------------------
// Logger output: count memberlist's log lines by kind; print them only with --log.

type logCounter struct{ echo io.Writer }

var (
	bSuspect  = []byte("] memberlist: Suspect ")
	bFailed   = []byte(" as failed, suspect timeout reached")
	bRefute   = []byte("] memberlist: Refuting ")
	bErr      = []byte("[ERR")
	bWarn     = []byte("[WARN]")
	bPushPull = []byte("Initiating push/pull sync")
)

func (w logCounter) Write(p []byte) (int, error) {
	atomic.AddUint64(&ctr.logLines, 1)
	switch {
	case bytes.Contains(p, bSuspect):
		atomic.AddUint64(&ctr.logSuspect, 1)
	case bytes.Contains(p, bFailed):
		atomic.AddUint64(&ctr.logFailed, 1)
	case bytes.Contains(p, bRefute):
		atomic.AddUint64(&ctr.logRefute, 1)
	case bytes.Contains(p, bPushPull):
		atomic.AddUint64(&ctr.logPushPull, 1)
	}
	if bytes.HasPrefix(p, bErr) {
		atomic.AddUint64(&ctr.logErr, 1)
	} else if bytes.HasPrefix(p, bWarn) {
		atomic.AddUint64(&ctr.logWarn, 1)
	}
	if w.echo != nil {
		return w.echo.Write(p)
	}
	return len(p), nil
}

// ---------------------------------------------------------------------------
// EventDelegate: NotifyLeave is a member marked dead (or left) by one node.

type events struct{}

func (events) NotifyJoin(*memberlist.Node)   { atomic.AddUint64(&ctr.evJoin, 1) }
func (events) NotifyLeave(*memberlist.Node)  { atomic.AddUint64(&ctr.evLeave, 1) }
func (events) NotifyUpdate(*memberlist.Node) { atomic.AddUint64(&ctr.evUpdate, 1) }

// ---------------------------------------------------------------------------
// Transport wrapper around memberlist.NetTransport that counts bytes sent on
// UDP and bytes both ways on TCP streams. UDP bytes received come from
// memberlist's own udp.received metric (counting them here would need an
// extra goroutine hop per packet).

type countingConn struct{ net.Conn }

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	atomic.AddUint64(&ctr.tcpBytesIn, uint64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	atomic.AddUint64(&ctr.tcpBytesOut, uint64(n))
	return n, err
}

type countingTransport struct {
	inner    *memberlist.NetTransport
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(inner *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{inner: inner, streamCh: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		in := inner.StreamCh()
		for {
			select {
			case c := <-in:
				atomic.AddUint64(&ctr.streamsAccepted, 1)
				select {
				case t.streamCh <- countingConn{c}:
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.inner.WriteTo(b, addr)
	if err == nil {
		atomic.AddUint64(&ctr.udpBytesOut, uint64(len(b)))
		atomic.AddUint64(&ctr.udpPacketsOut, 1)
	}
	return ts, err
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	atomic.AddUint64(&ctr.streamsDialed, 1)
	return countingConn{c}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *countingTransport) IngestPacket(conn net.Conn, addr net.Addr, now time.Time, shouldClose bool) error {
	return t.inner.IngestPacket(conn, addr, now, shouldClose)
}

func (t *countingTransport) IngestStream(conn net.Conn) error { return t.inner.IngestStream(conn) }

func (t *countingTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.inner.Shutdown()
}

// ---------------------------------------------------------------------------
// Process readings.

// procStatusKB returns a "Name:   123 kB" field of /proc/self/status, 0 if unreadable.
func procStatusKB(field string) uint64 {
	b, err := ioutil.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// schedstatNS sums the first field of /proc/self/task/*/schedstat (nanoseconds
// on CPU of every live thread), as shoal-loopback does; also returns the thread count.
func schedstatNS() (uint64, int) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return 0, 0
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var sum uint64
	n := 0
	for _, tid := range names {
		b, err := ioutil.ReadFile("/proc/self/task/" + tid + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		sum += v
		n++
	}
	return sum, n
}

// rusageS is user+system CPU seconds of the whole process (every thread, exited ones too).
func rusageS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func ctxSwitches() (vol, invol uint64) {
	return procStatusKB("voluntary_ctxt_switches"), procStatusKB("nonvoluntary_ctxt_switches")
}

func raiseFDLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	return rl.Cur
}

func heapJSON() map[string]uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return map[string]uint64{
		"heap_alloc_kb":  ms.HeapAlloc / 1024,
		"heap_inuse_kb":  ms.HeapInuse / 1024,
		"heap_sys_kb":    ms.HeapSys / 1024,
		"sys_kb":         ms.Sys / 1024,
		"num_gc":         uint64(ms.NumGC),
		"goroutines":     uint64(runtime.NumGoroutine()),
		"total_alloc_kb": ms.TotalAlloc / 1024,
	}
}

// ---------------------------------------------------------------------------

type node struct {
	m    *memberlist.Memberlist
	addr string
}

func startNode(i int, cfgName, bind string, port int, logOut io.Writer) (*node, error) {
	var conf *memberlist.Config
	switch cfgName {
	case "lan":
		conf = memberlist.DefaultLANConfig()
	case "local":
		conf = memberlist.DefaultLocalConfig()
	default:
		return nil, fmt.Errorf("unknown --config %q", cfgName)
	}
	conf.Name = "m" + strconv.Itoa(i)
	conf.BindAddr = bind
	conf.AdvertiseAddr = ""
	conf.Logger = log.New(logOut, conf.Name+" ", 0)
	conf.Events = events{}

	logger := conf.Logger
	var nt *memberlist.NetTransport
	var err error
	tries := 1
	if port == 0 {
		tries = 10 // TCP and UDP must get the same port: retry like memberlist does
	}
	for try := 0; try < tries; try++ {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bind}, BindPort: port, Logger: logger,
		})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("transport of %s: %v", conf.Name, err)
	}
	p := nt.GetAutoBindPort()
	conf.BindPort = p
	conf.AdvertisePort = p
	conf.Transport = newCountingTransport(nt)
	m, err := memberlist.Create(conf)
	if err != nil {
		conf.Transport.Shutdown()
		return nil, fmt.Errorf("create %s: %v", conf.Name, err)
	}
	return &node{m: m, addr: net.JoinHostPort(bind, strconv.Itoa(p))}, nil
}

func minMembers(nodes []*node) (lowest, done int) {
	lowest = len(nodes) + 1
	for _, nd := range nodes {
		k := nd.m.NumMembers()
		if k < lowest {
			lowest = k
		}
		if k == len(nodes) {
			done++
		}
	}
	return
}

// reportMissing prints, for a few stragglers, which members they do not count.
func reportMissing(nodes []*node) {
	for i, nd := range nodes {
		if nd.m.NumMembers() == len(nodes) {
			continue
		}
		seen := make(map[string]bool, len(nodes))
		for _, mem := range nd.m.Members() {
			seen[mem.Name] = true
		}
		var miss []string
		for j := range nodes {
			if name := "m" + strconv.Itoa(j); !seen[name] {
				miss = append(miss, name)
			}
		}
		if len(miss) > 16 {
			miss = append(miss[:16], "...")
		}
		fmt.Fprintf(os.Stderr, "    m%d misses (dead, left or unknown): %s\n", i, strings.Join(miss, " "))
	}
}

func main() {
	var (
		nNodes        = flag.Int("nodes", 64, "number of memberlist nodes in this process")
		joinInterval  = flag.Duration("join-interval", 20*time.Millisecond, "pace of the join calls (node i's join starts i*interval after the first)")
		joinTarget    = flag.String("join-target", "seed", "seed: node i joins node 0; random: node i joins a random earlier node")
		cfgName       = flag.String("config", "lan", "lan (DefaultLANConfig) or local (DefaultLocalConfig)")
		settleTimeout = flag.Duration("settle-timeout", 120*time.Second, "bound on the wait for every node's NumMembers()==N")
		window        = flag.Duration("window", 60*time.Second, "steady measurement window after convergence")
		bind          = flag.String("bind", "127.0.0.1", "address every node binds to")
		basePort      = flag.Int("base-port", 0, "node i binds base-port+i (TCP and UDP); 0: ephemeral ports")
		seed          = flag.Int64("seed", 1, "seed of the random join targets")
		logEcho       = flag.Bool("log", false, "also print memberlist's log lines on stderr (they are always counted)")
		jsonOut       = flag.Bool("json", false, "one JSON object on one line (default: indented)")
		measureAnyway = flag.Bool("window-without-convergence", true, "run the window even when the cluster did not converge")
	)
	flag.Parse()
	if *nNodes < 2 || *window <= 0 || (*joinTarget != "seed" && *joinTarget != "random") ||
		(*cfgName != "lan" && *cfgName != "local") || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	n := *nNodes
	wallStart := time.Now()
	fdLimit := raiseFDLimit()

	// Our counting sink as the global go-metrics instance (no hostname, no
	// runtime-stats goroutine).
	mc := metrics.DefaultConfig("")
	mc.EnableHostname = false
	mc.EnableHostnameLabel = false
	mc.EnableRuntimeMetrics = false
	if _, err := metrics.NewGlobal(mc, countingSink{}); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(2)
	}

	var logOut io.Writer = logCounter{}
	if *logEcho {
		logOut = logCounter{echo: os.Stderr}
	}

	out := map[string]interface{}{
		"harness":            "memberlist-loopback",
		"memberlist_version": memberlistVersion,
		"go_version":         runtime.Version(),
		"gomaxprocs":         runtime.GOMAXPROCS(0),
		"started_utc":        wallStart.UTC().Format(time.RFC3339),
		"nodes":              n,
		"config":             *cfgName,
		"join_interval_s":    joinInterval.Seconds(),
		"join_target":        *joinTarget,
		"settle_timeout_s":   settleTimeout.Seconds(),
		"window_s":           window.Seconds(),
		"bind":               *bind,
		"fd_limit":           fdLimit,
		"cpu_s_per_node_s_counts": "nanoseconds on CPU of every thread of this process in the window " +
			"(first field of /proc/self/task/*/schedstat, summed, as shoal-loopback), in seconds, per node-second",
		"bytes_per_node_s_counts": "bytes sent in the window, UDP payloads + TCP stream bytes (no IP/UDP/TCP headers), per node-second",
	}
	rssBefore := procStatusKB("VmRSS")
	out["rss_before_kb"] = rssBefore

	// Start every node first (listeners up), then join, like shoal-loopback.
	fmt.Fprintf(os.Stderr, "memberlist-loopback: %d nodes, config %s, joins every %v through %s\n",
		n, *cfgName, *joinInterval, *joinTarget)
	ts := time.Now()
	nodes := make([]*node, 0, n)
	for i := 0; i < n; i++ {
		port := 0
		if *basePort != 0 {
			port = *basePort + i
		}
		nd, err := startNode(i, *cfgName, *bind, port, logOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start failed:", err)
			os.Exit(2)
		}
		nodes = append(nodes, nd)
	}
	out["start_s"] = time.Since(ts).Seconds()
	fmt.Fprintf(os.Stderr, "started %d nodes in %.2f s; node 0 at %s\n", n, time.Since(ts).Seconds(), nodes[0].addr)

	// Paced joins: node i's join call starts at t0 + (i-1)*interval, or at once
	// if the previous call took longer.
	rng := rand.New(rand.NewSource(*seed))
	joinErrors := 0
	t0 := time.Now()
	for i := 1; i < n; i++ {
		if d := time.Until(t0.Add(time.Duration(i-1) * *joinInterval)); d > 0 {
			time.Sleep(d)
		}
		target := 0
		if *joinTarget == "random" {
			target = rng.Intn(i)
		}
		if k, err := nodes[i].m.Join([]string{nodes[target].addr}); err != nil || k == 0 {
			joinErrors++
			fmt.Fprintf(os.Stderr, "join of m%d via m%d: %v\n", i, target, err)
		}
	}
	tLast := time.Now()
	joinCalls := tLast.Sub(t0).Seconds()
	out["join_calls_s"] = joinCalls
	out["join_errors"] = joinErrors
	fmt.Fprintf(os.Stderr, "join calls done in %.2f s; waiting for every NumMembers()==%d\n", joinCalls, n)

	// Convergence: every node's NumMembers() (alive or suspect, in 0.2.2) == N.
	converged := false
	var convS float64
	nextReport := time.Now().Add(5 * time.Second)
	deadline := tLast.Add(*settleTimeout)
	lowest := 0
	for {
		var done int
		lowest, done = minMembers(nodes)
		if done == n {
			converged = true
			convS = time.Since(tLast).Seconds()
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if time.Now().After(nextReport) {
			nextReport = nextReport.Add(5 * time.Second)
			fmt.Fprintf(os.Stderr, "  t=%.1f s after last join: %d/%d nodes converged, lowest %d\n",
				time.Since(tLast).Seconds(), done, n, lowest)
			if done+8 >= n {
				reportMissing(nodes)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	out["converged"] = converged
	afterJoin := ctr.snap()
	if converged {
		out["converged_s"] = convS
		out["converged_from_first_join_s"] = joinCalls + convS
		out["min_members_at_timeout"] = nil
		fmt.Fprintf(os.Stderr, "converged %.2f s after the last join call\n", convS)
	} else {
		out["converged_s"] = nil
		out["converged_from_first_join_s"] = nil
		out["min_members_at_timeout"] = lowest
		fmt.Fprintf(os.Stderr, "TIMEOUT: not converged within %v of the last join call (lowest NumMembers %d of %d)\n",
			*settleTimeout, lowest, n)
		reportMissing(nodes)
	}
	joinPhase := delta(snapshot{}, afterJoin)
	out["join_phase_counts"] = joinPhase

	rssAfter := procStatusKB("VmRSS")
	out["rss_after_kb"] = rssAfter
	out["rss_per_node_kb"] = float64(int64(rssAfter)-int64(rssBefore)) / float64(n)
	out["rss_per_member_entry_b"] = float64(int64(rssAfter)-int64(rssBefore)) * 1024 / float64(n*n)

	if converged || *measureAnyway {
		fmt.Fprintf(os.Stderr, "steady window of %v\n", *window)
		a := ctr.snap()
		cpuA, _ := schedstatNS()
		ruA := rusageS()
		volA, involA := ctxSwitches()
		w0 := time.Now()
		time.Sleep(*window)
		w1 := time.Now()
		cpuB, threads := schedstatNS()
		ruB := rusageS()
		volB, involB := ctxSwitches()
		b := ctr.snap()
		lowEnd, doneEnd := minMembers(nodes)
		meas := w1.Sub(w0).Seconds()
		denom := meas * float64(n)
		d := delta(a, b)
		cpuS := float64(cpuB-cpuA) / 1e9
		wc := map[string]interface{}{}
		for k, v := range d {
			wc[k] = v
		}
		wc["measured_s"] = meas
		wc["cpu_ns"] = cpuB - cpuA
		wc["cpu_threads"] = threads
		wc["cpu_s_rusage"] = ruB - ruA
		wc["voluntary_ctxt_switches_main_thread"] = volB - volA
		wc["nonvoluntary_ctxt_switches_main_thread"] = involB - involA
		wc["min_members_at_end"] = lowEnd
		wc["nodes_with_n_members_at_end"] = doneEnd
		out["window_counts"] = wc
		out["cpu_s_per_node_s"] = cpuS / denom
		out["cpu_s_per_node_s_rusage"] = (ruB - ruA) / denom
		out["bytes_per_node_s"] = float64(d["udp_bytes_out"]+d["tcp_bytes_out"]) / denom
		out["bytes_in_per_node_s"] = float64(d["udp_bytes_in"]+d["tcp_bytes_in"]) / denom
		out["false_suspicions_window"] = d["suspicions"]
		out["false_deaths_window"] = d["event_leave"]
		fmt.Fprintf(os.Stderr, "window: cpu %.2f s (%d threads), udp out %d B, tcp out %d B, suspicions %d, dead events %d\n",
			cpuS, threads, d["udp_bytes_out"], d["tcp_bytes_out"], d["suspicions"], d["event_leave"])
	} else {
		out["window_counts"] = nil
		out["cpu_s_per_node_s"] = nil
		out["bytes_per_node_s"] = nil
	}
	out["rss_end_kb"] = procStatusKB("VmRSS")
	out["go_memory"] = heapJSON()
	out["wall_s"] = time.Since(wallStart).Seconds()
	out["timed_out"] = !converged

	var enc []byte
	var err error
	if *jsonOut {
		enc, err = json.Marshal(out)
	} else {
		enc, err = json.MarshalIndent(out, "", "  ")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "json:", err)
		os.Exit(2)
	}
	os.Stdout.Write(append(enc, '\n'))
	// No graceful shutdown: memberlist 0.2.2's Shutdown of many nodes is slow
	// and not what is measured; the process exits.
	if !converged {
		os.Exit(1)
	}
	os.Exit(0)
}
