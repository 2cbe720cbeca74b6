package loadgen

import (
	"bufio"
	"bytes"
	"testing"
)

func TestRuptelaCRCCheckValue(t *testing.T) {
	if got := ruptelaCRC([]byte("123456789")); got != 0x2189 {
		t.Errorf("CRC-16/Kermit check = %#04x, want 0x2189", got)
	}
	if got := ruptelaCRC(ruptelaAck[2:4]); got != 0x13bc {
		t.Errorf("ack CRC = %#04x, want 0x13bc", got)
	}
}

func TestRuptelaAckMismatch(t *testing.T) {
	codec, err := CodecFor("ruptela")
	if err != nil {
		t.Fatal(err)
	}
	for _, ack := range [][]byte{
		{0x00, 0x02, 0x64, 0x00, 0x13, 0xbc}, // "not received"
		{0x00, 0x02, 0x73, 0x01, 0x13, 0xbc}, // another command's answer
		ruptelaAck[:4],                       // cut short
	} {
		if err := codec.ReadAck(bufio.NewReader(bytes.NewReader(ack)), 3, 1); err == nil {
			t.Errorf("ack % x accepted", ack)
		}
	}
	if err := codec.ReadAck(bufio.NewReader(bytes.NewReader(ruptelaAck)), 3, 1); err != nil {
		t.Errorf("the decoder's ack refused: %v", err)
	}
}
