package onnxproto_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

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

// FuzzReadSignature: a backbone file is hostile until read. Any bytes are
// refused with ErrNotONNX or give a signature with outputs and dimensions
// that are sizes or free, never a panic. Run with
// go test -run '^$' -fuzz FuzzReadSignature -fuzztime 30s ./engine/onnxproto/
func FuzzReadSignature(f *testing.F) {
	good := tiny.Model(tiny.NewWeights(1)).Marshal()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x08, 0x08})
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := onnxproto.ReadSignature(data)
		if err != nil {
			if !errors.Is(err, onnxproto.ErrNotONNX) {
				t.Fatalf("error %v does not wrap ErrNotONNX", err)
			}
			return
		}
		if len(sig.Outputs) == 0 {
			t.Fatal("accepted a graph without outputs")
		}
		for _, vi := range append(sig.Inputs, sig.Outputs...) {
			for _, d := range vi.Dims {
				if d.Value < -1 {
					t.Fatalf("%s: dimension %d", vi.Name, d.Value)
				}
			}
		}
	})
}

// A dimension past 2^63 must not read as a negative ("free") one.
func TestReadSignatureHugeDimension(t *testing.T) {
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		var body []byte
		for _, p := range parts {
			body = append(body, p...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
	}
	dim := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1<<63)
	name := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "y")
	// ModelProto{ir_version: 8, graph: {output: {name, type: {tensor_type: {shape: {dim}}}}}}
	out := msg(12, name, msg(2, msg(1, msg(2, msg(1, dim)))))
	data := append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 8), msg(7, out)...)
	if _, err := onnxproto.ReadSignature(data); !errors.Is(err, onnxproto.ErrNotONNX) {
		t.Fatalf("error %v; want ErrNotONNX for a dimension of 2^63", err)
	}
	dim = protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7)
	out = msg(12, name, msg(2, msg(1, msg(2, msg(1, dim)))))
	data = append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 8), msg(7, out)...)
	sig, err := onnxproto.ReadSignature(data)
	if err != nil || len(sig.Outputs) != 1 || len(sig.Outputs[0].Dims) != 1 || sig.Outputs[0].Dims[0].Value != 7 {
		t.Fatalf("signature %+v, %v; want output y with dimension 7", sig, err)
	}
}
