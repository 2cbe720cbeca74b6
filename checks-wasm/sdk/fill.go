package sdk

import "unsafe"

// Code below is shaped for the WebAssembly guest: the host's time budget
// makes every loop iteration and every call cost an exit-code check, so the
// columns are copied without a loop (a switch that falls through) and the
// per-signal loop calls nothing but the rule.

// fillRow overwrites the declared values of the signal at sp with row i
// (byte offset off = 8·i); the undeclared ones keep their absent values.
func fillRow(sp, base unsafe.Pointer, ncols, off int) {
	switch ncols {
	case 20:
		*(*uint64)(unsafe.Add(sp, colOff[19])) = *(*uint64)(unsafe.Add(base, colData[19]+off))
		fallthrough
	case 19:
		*(*uint64)(unsafe.Add(sp, colOff[18])) = *(*uint64)(unsafe.Add(base, colData[18]+off))
		fallthrough
	case 18:
		*(*uint64)(unsafe.Add(sp, colOff[17])) = *(*uint64)(unsafe.Add(base, colData[17]+off))
		fallthrough
	case 17:
		*(*uint64)(unsafe.Add(sp, colOff[16])) = *(*uint64)(unsafe.Add(base, colData[16]+off))
		fallthrough
	case 16:
		*(*uint64)(unsafe.Add(sp, colOff[15])) = *(*uint64)(unsafe.Add(base, colData[15]+off))
		fallthrough
	case 15:
		*(*uint64)(unsafe.Add(sp, colOff[14])) = *(*uint64)(unsafe.Add(base, colData[14]+off))
		fallthrough
	case 14:
		*(*uint64)(unsafe.Add(sp, colOff[13])) = *(*uint64)(unsafe.Add(base, colData[13]+off))
		fallthrough
	case 13:
		*(*uint64)(unsafe.Add(sp, colOff[12])) = *(*uint64)(unsafe.Add(base, colData[12]+off))
		fallthrough
	case 12:
		*(*uint64)(unsafe.Add(sp, colOff[11])) = *(*uint64)(unsafe.Add(base, colData[11]+off))
		fallthrough
	case 11:
		*(*uint64)(unsafe.Add(sp, colOff[10])) = *(*uint64)(unsafe.Add(base, colData[10]+off))
		fallthrough
	case 10:
		*(*uint64)(unsafe.Add(sp, colOff[9])) = *(*uint64)(unsafe.Add(base, colData[9]+off))
		fallthrough
	case 9:
		*(*uint64)(unsafe.Add(sp, colOff[8])) = *(*uint64)(unsafe.Add(base, colData[8]+off))
		fallthrough
	case 8:
		*(*uint64)(unsafe.Add(sp, colOff[7])) = *(*uint64)(unsafe.Add(base, colData[7]+off))
		fallthrough
	case 7:
		*(*uint64)(unsafe.Add(sp, colOff[6])) = *(*uint64)(unsafe.Add(base, colData[6]+off))
		fallthrough
	case 6:
		*(*uint64)(unsafe.Add(sp, colOff[5])) = *(*uint64)(unsafe.Add(base, colData[5]+off))
		fallthrough
	case 5:
		*(*uint64)(unsafe.Add(sp, colOff[4])) = *(*uint64)(unsafe.Add(base, colData[4]+off))
		fallthrough
	case 4:
		*(*uint64)(unsafe.Add(sp, colOff[3])) = *(*uint64)(unsafe.Add(base, colData[3]+off))
		fallthrough
	case 3:
		*(*uint64)(unsafe.Add(sp, colOff[2])) = *(*uint64)(unsafe.Add(base, colData[2]+off))
		fallthrough
	case 2:
		*(*uint64)(unsafe.Add(sp, colOff[1])) = *(*uint64)(unsafe.Add(base, colData[1]+off))
		fallthrough
	case 1:
		*(*uint64)(unsafe.Add(sp, colOff[0])) = *(*uint64)(unsafe.Add(base, colData[0]+off))
	case 0:
	}
}
