// Package onnxproto reads and writes the small part of the ONNX protobuf format
// the project needs: the graph's input and output signatures (so both network
// runtimes can check names and shapes before running, and give the same
// errors), and building tiny models for tests without Python.
//
// It uses protowire directly instead of generated ONNX bindings: the subset is
// a few dozen lines and avoids vendoring onnx.proto.
package onnxproto

import (
	"errors"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx.proto (stable since IR version 3).
const (
	modelIRVersion = 1
	modelProducer  = 2
	modelGraph     = 7
	modelOpset     = 8

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput  = 1
	nodeOutput = 2
	nodeName   = 3
	nodeOpType = 4
	nodeAttr   = 5

	attrName  = 1
	attrF     = 2
	attrI     = 3
	attrInts  = 8
	attrType  = 20
	attrFloat = 1
	attrInt   = 2
	attrIntsT = 7

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor    = 1
	tensorElem    = 1
	tensorShape   = 2
	shapeDim      = 1
	dimValue      = 1
	dimParam      = 2
	ElemFloat32   = 1
	ElemUint8     = 2
	ElemInt64     = 7
	ElemFloat16   = 10
	ElemFloat64   = 11
	maxModelBytes = 2 << 30
)

// Dim is one dimension of a graph input or output: a fixed Value, or a free
// dimension (Value < 0) with an optional symbolic Param name.
type Dim struct {
	Value int64
	Param string
}

// Free reports whether the dimension accepts any size.
func (d Dim) Free() bool { return d.Value < 0 }

func (d Dim) String() string {
	if d.Free() {
		if d.Param != "" {
			return d.Param
		}
		return "?"
	}
	return fmt.Sprint(d.Value)
}

// ValueInfo is the signature of one graph input or output.
type ValueInfo struct {
	Name     string
	ElemType int32
	Dims     []Dim // nil when the model declares no shape
}

// Signature is what a model's graph declares at its boundary.
type Signature struct {
	Inputs  []ValueInfo
	Outputs []ValueInfo
}

// OutputNames lists the graph's output names in declaration order.
func (s Signature) OutputNames() []string {
	names := make([]string, len(s.Outputs))
	for i, o := range s.Outputs {
		names[i] = o.Name
	}
	return names
}

// ErrNotONNX marks data that does not parse as an ONNX model.
var ErrNotONNX = errors.New("not an ONNX model")

// ReadSignatureFile reads the model file's graph inputs and outputs.
func ReadSignatureFile(path string) (Signature, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Signature{}, err
	}
	if st.IsDir() {
		return Signature{}, fmt.Errorf("%s is a directory, not an ONNX file", path)
	}
	if st.Size() > maxModelBytes {
		return Signature{}, fmt.Errorf("%s: %d bytes is larger than the 2 GiB protobuf limit", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Signature{}, err
	}
	sig, err := ReadSignature(data)
	if err != nil {
		return Signature{}, fmt.Errorf("%s: %w", path, err)
	}
	return sig, nil
}

// ReadSignature parses a serialized ModelProto far enough to return the graph's
// inputs and outputs. Initializers listed as inputs (older IR versions) are
// left out, since nobody feeds them.
func ReadSignature(data []byte) (Signature, error) {
	var sig Signature
	if len(data) == 0 {
		return sig, fmt.Errorf("%w: empty file", ErrNotONNX)
	}
	var graph []byte
	var haveIR bool
	err := walk(data, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == modelIRVersion && typ == protowire.VarintType:
			haveIR = true
		case num == modelGraph && typ == protowire.BytesType:
			graph = v
		}
		return nil
	})
	if err != nil {
		return sig, fmt.Errorf("%w: %v", ErrNotONNX, err)
	}
	if !haveIR || graph == nil {
		return sig, fmt.Errorf("%w: no ir_version or graph", ErrNotONNX)
	}
	inits := map[string]bool{}
	var ins, outs [][]byte
	err = walk(graph, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphInitializer:
			return walk(v, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
				if n == tensorName && t == protowire.BytesType {
					inits[string(b)] = true
				}
				return nil
			})
		case graphInput:
			ins = append(ins, v)
		case graphOutput:
			outs = append(outs, v)
		}
		return nil
	})
	if err != nil {
		return sig, fmt.Errorf("%w: graph: %v", ErrNotONNX, err)
	}
	for _, b := range ins {
		vi, err := parseValueInfo(b)
		if err != nil {
			return sig, fmt.Errorf("%w: graph input: %v", ErrNotONNX, err)
		}
		if !inits[vi.Name] {
			sig.Inputs = append(sig.Inputs, vi)
		}
	}
	for _, b := range outs {
		vi, err := parseValueInfo(b)
		if err != nil {
			return sig, fmt.Errorf("%w: graph output: %v", ErrNotONNX, err)
		}
		sig.Outputs = append(sig.Outputs, vi)
	}
	if len(sig.Outputs) == 0 {
		return sig, fmt.Errorf("%w: graph has no outputs", ErrNotONNX)
	}
	return sig, nil
}

func parseValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == valueName && typ == protowire.BytesType:
			vi.Name = string(v)
		case num == valueType && typ == protowire.BytesType:
			return walk(v, func(n protowire.Number, t protowire.Type, tv []byte, _ uint64) error {
				if n != typeTensor || t != protowire.BytesType {
					return nil
				}
				return walk(tv, func(n protowire.Number, t protowire.Type, x []byte, u uint64) error {
					switch {
					case n == tensorElem && t == protowire.VarintType:
						vi.ElemType = int32(u)
					case n == tensorShape && t == protowire.BytesType:
						vi.Dims = []Dim{}
						return walk(x, func(n protowire.Number, t protowire.Type, d []byte, _ uint64) error {
							if n != shapeDim || t != protowire.BytesType {
								return nil
							}
							dim := Dim{Value: -1}
							err := walk(d, func(n protowire.Number, t protowire.Type, p []byte, u uint64) error {
								switch {
								case n == dimValue && t == protowire.VarintType:
									// A varint past 2^63 would read as negative, which
									// this package means as "any size".
									if u > math.MaxInt64 {
										return fmt.Errorf("dimension %d out of range", u)
									}
									dim.Value = int64(u)
								case n == dimParam && t == protowire.BytesType:
									dim.Param = string(p)
								}
								return nil
							})
							vi.Dims = append(vi.Dims, dim)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

// walk calls fn for each field of one protobuf message. v holds the payload of
// length-delimited fields; u holds varint values.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			u = uint64(x)
		case protowire.Fixed64Type:
			u, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, u); err != nil {
			return err
		}
	}
	return nil
}

// --- building models ---

// Attr is a node attribute: exactly one of Int, Ints, Float is meant.
type Attr struct {
	Name  string
	Int   *int64
	Ints  []int64
	Float *float32
}

// IntAttr, IntsAttr and FloatAttr build attributes.
func IntAttr(name string, v int64) Attr     { return Attr{Name: name, Int: &v} }
func IntsAttr(name string, v ...int64) Attr { return Attr{Name: name, Ints: v} }
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Float: &v} }

// Node is one operator application.
type Node struct {
	OpType  string
	Name    string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Initializer is a constant float32 tensor (weights).
type Initializer struct {
	Name string
	Dims []int64
	Data []float32
}

// Model is the buildable subset of a ModelProto.
type Model struct {
	Opset        int64
	Producer     string
	GraphName    string
	Nodes        []Node
	Initializers []Initializer
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Marshal serializes the model as an ONNX ModelProto (IR version 8).
func (m Model) Marshal() []byte {
	var g []byte
	for _, n := range m.Nodes {
		g = appendMsg(g, graphNode, marshalNode(n))
	}
	g = protowire.AppendTag(g, graphName, protowire.BytesType)
	g = protowire.AppendString(g, m.GraphName)
	for _, in := range m.Initializers {
		g = appendMsg(g, graphInitializer, marshalTensor(in))
	}
	for _, v := range m.Inputs {
		g = appendMsg(g, graphInput, marshalValueInfo(v))
	}
	for _, v := range m.Outputs {
		g = appendMsg(g, graphOutput, marshalValueInfo(v))
	}
	var b []byte
	b = protowire.AppendTag(b, modelIRVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, 8)
	b = protowire.AppendTag(b, modelProducer, protowire.BytesType)
	b = protowire.AppendString(b, m.Producer)
	b = appendMsg(b, modelGraph, g)
	var op []byte
	op = protowire.AppendTag(op, opsetDomain, protowire.BytesType)
	op = protowire.AppendString(op, "")
	op = protowire.AppendTag(op, opsetVersion, protowire.VarintType)
	op = protowire.AppendVarint(op, uint64(m.Opset))
	b = appendMsg(b, modelOpset, op)
	return b
}

func appendMsg(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func marshalNode(n Node) []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, nodeInput, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, nodeOutput, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = protowire.AppendTag(b, nodeName, protowire.BytesType)
	b = protowire.AppendString(b, n.Name)
	b = protowire.AppendTag(b, nodeOpType, protowire.BytesType)
	b = protowire.AppendString(b, n.OpType)
	for _, a := range n.Attrs {
		var ab []byte
		ab = protowire.AppendTag(ab, attrName, protowire.BytesType)
		ab = protowire.AppendString(ab, a.Name)
		switch {
		case a.Float != nil:
			ab = protowire.AppendTag(ab, attrF, protowire.Fixed32Type)
			ab = protowire.AppendFixed32(ab, math.Float32bits(*a.Float))
			ab = protowire.AppendTag(ab, attrType, protowire.VarintType)
			ab = protowire.AppendVarint(ab, attrFloat)
		case a.Int != nil:
			ab = protowire.AppendTag(ab, attrI, protowire.VarintType)
			ab = protowire.AppendVarint(ab, uint64(*a.Int))
			ab = protowire.AppendTag(ab, attrType, protowire.VarintType)
			ab = protowire.AppendVarint(ab, attrInt)
		default:
			var packed []byte
			for _, v := range a.Ints {
				packed = protowire.AppendVarint(packed, uint64(v))
			}
			ab = protowire.AppendTag(ab, attrInts, protowire.BytesType)
			ab = protowire.AppendBytes(ab, packed)
			ab = protowire.AppendTag(ab, attrType, protowire.VarintType)
			ab = protowire.AppendVarint(ab, attrIntsT)
		}
		b = appendMsg(b, nodeAttr, ab)
	}
	return b
}

func marshalTensor(t Initializer) []byte {
	var b []byte
	var dims []byte
	for _, d := range t.Dims {
		dims = protowire.AppendVarint(dims, uint64(d))
	}
	b = protowire.AppendTag(b, tensorDims, protowire.BytesType)
	b = protowire.AppendBytes(b, dims)
	b = protowire.AppendTag(b, tensorDataType, protowire.VarintType)
	b = protowire.AppendVarint(b, ElemFloat32)
	b = protowire.AppendTag(b, tensorName, protowire.BytesType)
	b = protowire.AppendString(b, t.Name)
	raw := make([]byte, 0, 4*len(t.Data))
	for _, v := range t.Data {
		raw = protowire.AppendFixed32(raw, math.Float32bits(v)) // little-endian, as raw_data requires
	}
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func marshalValueInfo(v ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Dims {
		var db []byte
		if d.Free() {
			db = protowire.AppendTag(db, dimParam, protowire.BytesType)
			db = protowire.AppendString(db, d.Param)
		} else {
			db = protowire.AppendTag(db, dimValue, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		}
		shape = appendMsg(shape, shapeDim, db)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, tensorElem, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.ElemType))
	tt = appendMsg(tt, tensorShape, shape)
	var typ []byte
	typ = appendMsg(typ, typeTensor, tt)
	var b []byte
	b = protowire.AppendTag(b, valueName, protowire.BytesType)
	b = protowire.AppendString(b, v.Name)
	return appendMsg(b, valueType, typ)
}
