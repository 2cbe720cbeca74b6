package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Result is a decoded output block (ParseResult): what a host reads from
// fc_decode. Native tests use it to look at what a decoder produced.
type Result struct {
	Status   Code
	Close    bool
	StateSet bool
	Device   []byte
	Ack      []byte
	Reject   []byte
	Message  string
	State    []byte
	Records  []Rec
}

// Rec is one record of a Result.
type Rec struct {
	Mask   uint32
	TS     int64              // when Mask bit 0 is set
	Fields [numFields]float64 // by Field; NaN when absent
	Valid  uint8              // 0 unknown, 1 false, 2 true
	Stamp  uint8              // 0 server time to the ms, 1 to the second
	Attrs  []Attr
	DTCs   []string
	OBD    []OBD
}

// Attr is one attribute of a Rec; Value is a float64, int64, bool or
// string.
type Attr struct {
	Name  string
	Value any
}

// OBD is one OBD item of a Rec: Raw data (Scaled false) or a Value.
type OBD struct {
	PID    byte
	Scaled bool
	Raw    []byte
	Value  float64
}

// ParseResult decodes an output block, checking every length and field
// the ABI fixes (it is as strict as the host).
func ParseResult(b []byte) (Result, error) {
	le := binary.LittleEndian
	var r Result
	if len(b) < OutputHeaderSize || [4]byte(b[:4]) != OutputMagic {
		return r, fmt.Errorf("output of %d bytes without the FCR1 header", len(b))
	}
	r.Status = Code(int32(le.Uint32(b[4:])))
	flags := le.Uint32(b[8:])
	if flags&^uint32(FlagClose|FlagStateSet) != 0 {
		return r, fmt.Errorf("output flags 0x%x: unknown bits", flags)
	}
	r.Close, r.StateSet = flags&FlagClose != 0, flags&FlagStateSet != 0
	nrec := le.Uint32(b[12:])
	var lens [6]uint64
	total := uint64(OutputHeaderSize)
	for i := range lens {
		lens[i] = uint64(le.Uint32(b[16+4*i:]))
		total += lens[i]
	}
	if le.Uint64(b[40:]) != 0 {
		return r, fmt.Errorf("output header bytes 40..47 are not zero")
	}
	if total != uint64(len(b)) {
		return r, fmt.Errorf("output sections of %d bytes in a block of %d", total-OutputHeaderSize, len(b)-OutputHeaderSize)
	}
	off := uint64(OutputHeaderSize)
	next := func(i int) []byte {
		s := b[off : off+lens[i]]
		off += lens[i]
		return s
	}
	r.Device, r.Ack, r.Reject = next(0), next(1), next(2)
	r.Message = string(next(3))
	r.State = next(4)
	recs := next(5)
	for i := uint32(0); i < nrec; i++ {
		rec, n, err := parseRec(recs)
		if err != nil {
			return r, fmt.Errorf("record %d: %w", i, err)
		}
		r.Records = append(r.Records, rec)
		recs = recs[n:]
	}
	if len(recs) != 0 {
		return r, fmt.Errorf("%d bytes after %d records", len(recs), nrec)
	}
	return r, nil
}

func parseRec(b []byte) (Rec, int, error) {
	le := binary.LittleEndian
	var rec Rec
	if len(b) < 16 {
		return rec, 0, fmt.Errorf("%d bytes, header needs 16", len(b))
	}
	n := int(le.Uint32(b))
	if n < 16 || n > len(b) {
		return rec, 0, fmt.Errorf("rec_len %d with %d bytes left", n, len(b))
	}
	b = b[:n]
	rec.Mask = le.Uint32(b[4:])
	if rec.Mask&(1<<1) != 0 || rec.Mask>>numFields != 0 {
		return rec, 0, fmt.Errorf("field mask 0x%x sets recv or bits ≥ 16", rec.Mask)
	}
	rec.Valid, rec.Stamp = b[8], b[9]
	if rec.Valid > 2 || rec.Stamp > 1 {
		return rec, 0, fmt.Errorf("valid %d / stamp %d", b[8], b[9])
	}
	na, nd, no := int(le.Uint16(b[10:])), int(le.Uint16(b[12:])), int(le.Uint16(b[14:]))
	p := 16
	need := func(k int) error {
		if len(b)-p < k {
			return fmt.Errorf("record ends at byte %d, %d more needed", len(b), k)
		}
		return nil
	}
	for f := range rec.Fields {
		rec.Fields[f] = math.NaN()
	}
	for f := 0; f < numFields; f++ {
		if rec.Mask&(1<<f) == 0 {
			continue
		}
		if err := need(8); err != nil {
			return rec, 0, err
		}
		v := le.Uint64(b[p:])
		p += 8
		if f == 0 {
			rec.TS = int64(v)
		} else {
			rec.Fields[f] = math.Float64frombits(v)
		}
	}
	for i := 0; i < na; i++ {
		if err := need(2); err != nil {
			return rec, 0, err
		}
		kind, nl := b[p], int(b[p+1])
		p += 2
		if err := need(nl); err != nil {
			return rec, 0, err
		}
		name := string(b[p : p+nl])
		p += nl
		if !validName(name, MaxAttrName) {
			return rec, 0, fmt.Errorf("attr name %q", name)
		}
		var v any
		switch kind {
		case attrF64, attrI64:
			if err := need(8); err != nil {
				return rec, 0, err
			}
			x := le.Uint64(b[p:])
			p += 8
			if kind == attrF64 {
				v = math.Float64frombits(x)
			} else {
				v = int64(x)
			}
		case attrBool:
			if err := need(1); err != nil {
				return rec, 0, err
			}
			if b[p] > 1 {
				return rec, 0, fmt.Errorf("attr %s: bool byte %d", name, b[p])
			}
			v = b[p] == 1
			p++
		case attrString:
			if err := need(2); err != nil {
				return rec, 0, err
			}
			sl := int(le.Uint16(b[p:]))
			p += 2
			if err := need(sl); err != nil {
				return rec, 0, err
			}
			v = string(b[p : p+sl])
			p += sl
		default:
			return rec, 0, fmt.Errorf("attr %s: kind %d", name, kind)
		}
		rec.Attrs = append(rec.Attrs, Attr{name, v})
	}
	for i := 0; i < nd; i++ {
		if err := need(1); err != nil {
			return rec, 0, err
		}
		l := int(b[p])
		p++
		if err := need(l); err != nil {
			return rec, 0, err
		}
		rec.DTCs = append(rec.DTCs, string(b[p:p+l]))
		p += l
	}
	for i := 0; i < no; i++ {
		if err := need(2); err != nil {
			return rec, 0, err
		}
		kind, pid := b[p], b[p+1]
		p += 2
		switch kind {
		case 1:
			if err := need(1); err != nil {
				return rec, 0, err
			}
			l := int(b[p])
			p++
			if err := need(l); err != nil {
				return rec, 0, err
			}
			rec.OBD = append(rec.OBD, OBD{PID: pid, Raw: b[p : p+l]})
			p += l
		case 2:
			if err := need(8); err != nil {
				return rec, 0, err
			}
			rec.OBD = append(rec.OBD, OBD{PID: pid, Scaled: true, Value: math.Float64frombits(le.Uint64(b[p:]))})
			p += 8
		default:
			return rec, 0, fmt.Errorf("OBD item kind %d", kind)
		}
	}
	if p != n {
		return rec, 0, fmt.Errorf("%d bytes after the record's items", n-p)
	}
	return rec, n, nil
}

// Attr returns the value of attribute name, or nil.
func (r *Rec) Attr(name string) any {
	for _, a := range r.Attrs {
		if a.Name == name {
			return a.Value
		}
	}
	return nil
}
