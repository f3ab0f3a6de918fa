package alerts

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// syncBuffer collects logs from background goroutines; t.Log would panic
// if one of them logged after the test ended.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a logger whose output is shown when the test fails.
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func testConfig(t testing.TB, brokerURL, camera string) Config {
	t.Helper()
	log, _ := testLogger(t)
	return Config{
		Brokers:              []string{brokerURL},
		Camera:               camera,
		SpoolDir:             t.TempDir(),
		KeepAlive:            time.Second,
		ConnectTimeout:       2 * time.Second,
		AckTimeout:           2 * time.Second,
		RetryInterval:        100 * time.Millisecond,
		MaxReconnectInterval: 500 * time.Millisecond,
		StatusInterval:       100 * time.Millisecond,
		Logger:               log,
	}
}

// newPublisher starts a publisher that is closed when the test ends.
func newPublisher(t testing.TB, cfg Config) *Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func mosquittoPath(t testing.TB) string {
	t.Helper()
	const p = "/usr/sbin/mosquitto"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if lp, err := exec.LookPath("mosquitto"); err == nil {
		return lp
	}
	t.Skip("mosquitto broker not found at /usr/sbin/mosquitto or on PATH; install it (apt-get install mosquitto) to run the MQTT tests")
	return ""
}

type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// mosquitto is a mosquitto process on a loopback port, with its own config.
type mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

type brokerOptions struct {
	tls          *tlsFiles
	passwordFile string
	persistence  bool // keep sessions and queued messages across restarts
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startBroker(t testing.TB, o brokerOptions) *mosquitto {
	t.Helper()
	bin := mosquittoPath(t)
	dir := t.TempDir()
	b := &mosquitto{t: t, bin: bin, port: freePort(t), logs: &syncBuffer{}, conf: filepath.Join(dir, "mosquitto.conf")}
	var c strings.Builder
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.port)
	if os.Getuid() == 0 {
		// Otherwise mosquitto drops to user "mosquitto", which cannot read
		// the test's temporary files.
		c.WriteString("user root\n")
	}
	if o.passwordFile != "" {
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", o.passwordFile)
	} else {
		c.WriteString("allow_anonymous true\n")
	}
	if o.tls != nil {
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
			o.tls.ca, o.tls.serverCert, o.tls.serverKey)
	}
	if o.persistence {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", dir)
	} else {
		c.WriteString("persistence false\n")
	}
	c.WriteString("log_dest stderr\nlog_type all\n")
	if err := os.WriteFile(b.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.logs.String())
		}
	})
	b.start()
	return b
}

func (b *mosquitto) url(scheme string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.port)
}

func (b *mosquitto) start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("starting mosquitto: %v", err)
	}
	b.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(b.cmd, b.done)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-b.done:
			b.t.Fatalf("mosquitto exited at start:\n%s", b.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %d within 5s:\n%s", b.port, b.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *mosquitto) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
}

type message struct {
	topic    string
	payload  []byte
	retained bool
}

type subOptions struct {
	tls        *tls.Config
	user, pass string
	clientID   string // non-empty: persistent session (queued while away)
}

// subscribe connects a real paho client and collects what arrives on filter.
func subscribe(t testing.TB, url, filter string, o subOptions) <-chan message {
	t.Helper()
	ch := make(chan message, 4096)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		ch <- message{topic: m.Topic(), payload: append([]byte(nil), m.Payload()...), retained: m.Retained()}
	}
	opts := mqtt.NewClientOptions().AddBroker(url).
		SetUsername(o.user).SetPassword(o.pass).
		SetAutoReconnect(true).SetMaxReconnectInterval(300 * time.Millisecond).
		SetConnectTimeout(2 * time.Second).SetKeepAlive(2 * time.Second).
		SetProtocolVersion(4).
		SetDefaultPublishHandler(handler)
	if o.tls != nil {
		opts.SetTLSConfig(o.tls)
	}
	if o.clientID != "" {
		opts.SetClientID(o.clientID).SetCleanSession(false)
	} else {
		opts.SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano()))
	}
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return ch
}

// publishRaw sends one message from a separate test client.
func publishRaw(t testing.TB, url, topic string, payload []byte, retained bool) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test publish: %v", tok.Error())
	}
}

// next returns the next message whose topic satisfies keep.
func next(t testing.TB, ch <-chan message, timeout time.Duration, keep func(string) bool) message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ch:
			if keep == nil || keep(m.topic) {
				return m
			}
		case <-deadline:
			t.Fatalf("no message within %v", timeout)
		}
	}
}

func eventsAndHeatmaps(topic string) bool {
	return strings.HasSuffix(topic, "/event") || strings.Contains(topic, "/heatmap/")
}

// testJPEG encodes a small gradient image, different per seed.
func testJPEG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(x*4 + seed), uint8(y * 5), uint8(seed * 7), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makePKI writes a CA, a server certificate for 127.0.0.1/localhost and a
// client certificate, all signed by the CA.
func makePKI(t testing.TB, dir string) tlsFiles {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "inspectd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	files := tlsFiles{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, files.ca, "CERTIFICATE", caDER)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certPath, "CERTIFICATE", der)
		writePEM(t, keyPath, "EC PRIVATE KEY", keyDER)
	}
	files.serverCert, files.serverKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	files.clientCert, files.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	leaf(2, "localhost", x509.ExtKeyUsageServerAuth, files.serverCert, files.serverKey)
	leaf(3, "inspectd-cam", x509.ExtKeyUsageClientAuth, files.clientCert, files.clientKey)
	return files
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
