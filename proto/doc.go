// Package proto holds eddy's .proto files and their generated Go code, which
// is committed so that building eddy needs no protoc. After editing a .proto
// file, regenerate with:
//
//	go generate ./proto
//
// which needs protoc (Debian: protobuf-compiler) and the pinned plugins
// protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.5.1 on PATH. CI checks
// that the committed code is up to date.
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative eddy/v1/eddy.proto
