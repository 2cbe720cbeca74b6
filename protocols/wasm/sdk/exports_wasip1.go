//go:build wasip1

//lint:file-ignore U1000 these functions are exported to the host with go:wasmexport

package sdk

import "unsafe"

// input is the buffer fc_alloc hands out for the input block: allocated
// once, grown only when a larger block is asked for, and kept referenced
// so the collector never frees it. []uint64 makes it 8-aligned.
var input []uint64

//go:wasmexport fc_abi
func fcABI() int32 { return ABIVersion }

// span packs a pointer and a length as the ABI's ptr<<32|len.
func span(p unsafe.Pointer, n int) int64 {
	return int64(uintptr(p))<<32 | int64(uint32(n))
}

//go:wasmexport fc_meta
func fcMeta() int64 {
	if registered == nil {
		return 0
	}
	js := registered.metaJSON
	return span(unsafe.Pointer(unsafe.StringData(js)), len(js))
}

//go:wasmexport fc_alloc
func fcAlloc(size int32) int32 {
	if size <= 0 || size > 1<<30 {
		return 0
	}
	words := (int(size) + 7) / 8
	if cap(input) < words {
		input = make([]uint64, words)
	}
	input = input[:cap(input)]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(input))))
}

// block returns the input bytes at ptr, or nil when ptr/n is not inside
// the fc_alloc buffer.
func block(ptr, n int32) []byte {
	if len(input) == 0 || n < 0 {
		return nil
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(input)))
	size := uintptr(8 * len(input))
	p := uintptr(uint32(ptr))
	if p < base || p-base+uintptr(n) > size {
		return nil
	}
	all := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(input))), 8*len(input))
	return all[p-base : p-base+uintptr(n)]
}

//go:wasmexport fc_frame
func fcFrame(ptr, n int32) int32 {
	if registered == nil {
		return int32(CodeABI)
	}
	in := block(ptr, n)
	if in == nil {
		registered.setError("sdk: fc_frame input is not inside the fc_alloc buffer")
		return int32(CodeABI)
	}
	return registered.Frame(in)
}

//go:wasmexport fc_decode
func fcDecode(ptr, n int32) int64 {
	if registered == nil {
		return 0
	}
	in := block(ptr, n)
	var out []byte
	if in == nil {
		out = registered.Decode(nil) // an FCR1 block with the ABI error
	} else {
		out = registered.Decode(in)
	}
	return span(unsafe.Pointer(unsafe.SliceData(out)), len(out))
}

//go:wasmexport fc_error
func fcError() int64 {
	if registered == nil || len(registered.errMsg) == 0 {
		return 0
	}
	return span(unsafe.Pointer(unsafe.SliceData(registered.errMsg)), len(registered.errMsg))
}
