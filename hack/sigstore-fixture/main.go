// sigstore-fixture writes keyless Sigstore test material for trustwatch's tests: a
// trusted_root.json and a Sigstore bundle v0.3 (DSSE in-toto statement whose subject is the
// given image digest, a Fulcio-style leaf certificate, a Rekor v1 dsse entry with its SET and an
// RFC 3161 timestamp), all from sigstore-go's VirtualSigstore (pkg/testing/ca). It also verifies
// a bundle with sigstore-go's own verifier, as a second reference beside cosign.
//
//	sigstore-fixture make -digest sha256:HEX -identity SAN -issuer URL -out DIR [-subject-digest sha256:HEX]
//	sigstore-fixture verify -root FILE -bundle FILE -digest sha256:HEX -identity SAN -issuer URL
//
// Built by hack/go-tools.sh into the cache; never committed as a binary.
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"
)

// What cosign v3 signs for an image (its new bundle format): an in-toto statement with the
// predicate type below and the image digest as its only subject.
const predicateType = "https://sigstore.dev/cosign/sign/v1"

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: sigstore-fixture make|verify ..."))
	}
	switch os.Args[1] {
	case "make":
		fail(makeCmd(os.Args[2:]))
	case "verify":
		fail(verifyCmd(os.Args[2:]))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigstore-fixture:", err)
		os.Exit(1)
	}
}

func splitDigest(d string) (string, []byte, error) {
	alg, h, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" {
		return "", nil, fmt.Errorf("digest %q is not sha256:HEX", d)
	}
	b, err := hex.DecodeString(h)
	return h, b, err
}

func makeCmd(args []string) error {
	fs := flag.NewFlagSet("make", flag.ExitOnError)
	digest := fs.String("digest", "", "image digest the bundle is for (sha256:HEX)")
	subject := fs.String("subject-digest", "", "negative case: the statement's subject digest instead of -digest")
	identity := fs.String("identity", "", "certificate SAN (e-mail)")
	issuer := fs.String("issuer", "", "OIDC issuer")
	out := fs.String("out", "", "output directory")
	_ = fs.Parse(args)
	if *subject == "" {
		*subject = *digest
	}
	hexDigest, _, err := splitDigest(*subject)
	if err != nil {
		return err
	}
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return err
	}
	statement, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "", "digest": map[string]string{"sha256": hexDigest}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		return err
	}
	// Bundle v0.3 requires an inclusion proof beside the SET; Attest's timing: the leaf is
	// valid for 10 minutes from now, the entry integrated 5 minutes in.
	entity, err := vs.AttestAtTime(*identity, *issuer, statement, time.Now().Add(5*time.Minute), true)
	if err != nil {
		return err
	}
	b, err := toBundle(vs, entity)
	if err != nil {
		return err
	}
	rekorLogs, err := rawLogIDs(vs.RekorLogs())
	if err != nil {
		return err
	}
	ctLogs, err := rawLogIDs(vs.CTLogs())
	if err != nil {
		return err
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(),
		ctLogs, vs.TimestampingAuthorities(), rekorLogs)
	if err != nil {
		return err
	}
	trJSON, err := tr.MarshalJSON()
	if err != nil {
		return err
	}
	bJSON, err := protojson.Marshal(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "trusted_root.json"), trJSON, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "bundle.json"), bJSON, 0o644)
}

func toBundle(vs *ca.VirtualSigstore, e *ca.TestEntity) (*protobundle.Bundle, error) {
	vc, err := e.VerificationContent()
	if err != nil {
		return nil, err
	}
	cert := vc.Certificate()
	sc, err := e.SignatureContent()
	if err != nil {
		return nil, err
	}
	env, ok := sc.(*bundle.Envelope)
	if !ok {
		return nil, fmt.Errorf("expected a DSSE envelope")
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, err
	}
	var sigs []*protodsse.Signature
	for _, s := range env.Signatures {
		raw, err := decodeB64(s.Sig)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, &protodsse.Signature{Sig: raw, Keyid: s.KeyID})
	}
	entries, err := e.TlogEntries()
	if err != nil {
		return nil, err
	}
	var tles []*protorekor.TransparencyLogEntry
	for _, t := range entries {
		// tlog.NewEntry keeps the SET and the entry's kind outside the protobuf entry; a
		// bundle carries both, so sign the SET again (the same payload VirtualSigstore signs).
		tle := t.TransparencyLogEntry()
		set, err := vs.RekorSignPayload(tlog.RekorPayload{
			Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			IntegratedTime: tle.IntegratedTime,
			LogIndex:       tle.LogIndex,
			LogID:          hex.EncodeToString(tle.LogId.KeyId),
		})
		if err != nil {
			return nil, err
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
		tles = append(tles, tle)
	}
	tsrs, err := e.Timestamps()
	if err != nil {
		return nil, err
	}
	var stamps []*protocommon.RFC3161SignedTimestamp
	for _, t := range tsrs {
		stamps = append(stamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: t})
	}
	return &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}},
			TlogEntries:               tles,
			TimestampVerificationData: &protobundle.TimestampVerificationData{Rfc3161Timestamps: stamps},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType, Signatures: sigs,
		}},
	}, nil
}

func verifyCmd(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	rootPath := fs.String("root", "", "trusted_root.json")
	bundlePath := fs.String("bundle", "", "bundle.json")
	digest := fs.String("digest", "", "image digest (sha256:HEX)")
	identity := fs.String("identity", "", "certificate SAN, exact")
	issuer := fs.String("issuer", "", "OIDC issuer, exact")
	_ = fs.Parse(args)
	_, raw, err := splitDigest(*digest)
	if err != nil {
		return err
	}
	tr, err := root.NewTrustedRootFromPath(*rootPath)
	if err != nil {
		return err
	}
	b, err := bundle.LoadJSONFromPath(*bundlePath)
	if err != nil {
		return err
	}
	// VirtualSigstore's leaf certificates carry no embedded SCT, so no SCT threshold here.
	v, err := verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
	if err != nil {
		return err
	}
	id, err := verify.NewShortCertificateIdentity(*issuer, "", *identity, "")
	if err != nil {
		return err
	}
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", raw), verify.WithCertificateIdentity(id)))
	if err != nil {
		return err
	}
	fmt.Println("verified")
	return nil
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// VirtualSigstore's logs carry their log ID as the hex string's bytes (its in-memory maps are
// keyed by that hex); a trusted_root.json carries the raw SHA-256 of the log's key.
func rawLogIDs(logs map[string]*root.TransparencyLog) (map[string]*root.TransparencyLog, error) {
	out := make(map[string]*root.TransparencyLog, len(logs))
	for k, tl := range logs {
		raw, err := hex.DecodeString(k)
		if err != nil {
			return nil, err
		}
		tl.ID = raw
		out[k] = tl
	}
	return out, nil
}
