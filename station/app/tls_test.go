package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/expresshub/station/station/config"
)

func TestGRPCTransportSecurityFromConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "station"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, keyFile := write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)

	if opts, err := grpcTLS(config.GRPC{}); err != nil || len(opts) != 0 {
		t.Fatalf("plaintext: %v %v", opts, err)
	}
	if opts, err := grpcTLS(config.GRPC{TLSCert: cert, TLSKey: keyFile}); err != nil || len(opts) != 1 {
		t.Fatalf("TLS: %v %v", opts, err)
	}
	if opts, err := grpcTLS(config.GRPC{TLSCert: cert, TLSKey: keyFile, ClientCA: cert}); err != nil || len(opts) != 1 {
		t.Fatalf("mTLS: %v %v", opts, err)
	}
	if _, err := grpcTLS(config.GRPC{TLSCert: cert, TLSKey: cert}); err == nil {
		t.Fatal("a certificate as its own key was accepted")
	}
	if _, err := grpcTLS(config.GRPC{TLSCert: cert, TLSKey: keyFile, ClientCA: keyFile}); err == nil {
		t.Fatal("a client CA file without a certificate was accepted")
	}
}
