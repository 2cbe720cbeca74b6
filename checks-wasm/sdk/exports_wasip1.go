//go:build wasip1

//lint:file-ignore U1000 these functions are exported to the host with go:wasmexport

package sdk

import "unsafe"

// buffer is the batch buffer fc_alloc hands out: allocated once, grown only
// when a larger batch is asked for, and kept referenced so the collector
// never frees it. []uint64 makes it 8-aligned.
var buffer []uint64

//go:wasmexport fc_abi
func fcABI() int32 { return ABIVersion }

//go:wasmexport fc_meta
func fcMeta() int64 {
	p := unsafe.StringData(metaJSON)
	return int64(uintptr(unsafe.Pointer(p)))<<32 | int64(len(metaJSON))
}

//go:wasmexport fc_alloc
func fcAlloc(size int32) int32 {
	if size <= 0 || size > 1<<30 {
		return 0
	}
	words := (int(size) + 7) / 8
	if cap(buffer) < words {
		buffer = make([]uint64, words)
	}
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buffer))))
}

//go:wasmexport fc_check
func fcCheck(ptr, n int32) int32 {
	if len(buffer) == 0 || uintptr(ptr) != uintptr(unsafe.Pointer(unsafe.SliceData(buffer))) {
		return ErrBadSize
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(buffer))), 8*len(buffer))
	return Process(buf, int(n))
}
