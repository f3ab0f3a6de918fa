// Package spec holds the plain settings that cross the line between data and
// native code: how images become backbone input and pooled features
// (Features, Transforms, the ROI form), recorded in model files, and which
// network runtime runs the backbone (RuntimeKind, Provider), chosen by
// configuration.
//
// It imports no native code, so package model (which reads and writes model
// files) and package config (which reads settings) can use these types
// without linking OpenCV or ONNX Runtime. The packages that act on them,
// features, transform, imageops and engine, keep their old names for them
// as aliases (features.Config is spec.Features).
package spec
