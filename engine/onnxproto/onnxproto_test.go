package onnxproto_test

import (
	"errors"
	"testing"

	"github.com/inspectd/inspectd/engine/onnxproto"
	"github.com/inspectd/inspectd/engine/tiny"
)

func TestSignatureRoundTrip(t *testing.T) {
	data := tiny.Model(tiny.NewWeights(1)).Marshal()
	sig, err := onnxproto.ReadSignature(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig.Inputs) != 1 || sig.Inputs[0].Name != "input" {
		t.Fatalf("inputs %+v; initializers must not count as inputs", sig.Inputs)
	}
	dims := sig.Inputs[0].Dims
	if len(dims) != 4 || !dims[0].Free() || dims[0].Param != "N" || dims[1].Value != 3 || !dims[2].Free() {
		t.Fatalf("input dims %v", dims)
	}
	if got := sig.OutputNames(); len(got) != 2 || got[0] != tiny.Tap1 || got[1] != tiny.Tap2 {
		t.Fatalf("outputs %v", got)
	}
}

func TestReadSignatureRejects(t *testing.T) {
	good := tiny.Model(tiny.NewWeights(1)).Marshal()
	cases := map[string][]byte{
		"empty":     nil,
		"text":      []byte("hello, world"),
		"truncated": good[:len(good)-7],
		"no graph":  {0x08, 0x08},
	}
	for name, data := range cases {
		if _, err := onnxproto.ReadSignature(data); !errors.Is(err, onnxproto.ErrNotONNX) {
			t.Errorf("%s: error %v; want ErrNotONNX", name, err)
		}
	}
}
