package teltonika_test

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/teltonika"
)

// A device logs in with its IMEI, then sends a codec 8 frame (here the
// worked example of Teltonika's documentation); each reply is what the
// gateway writes back once the records are durable.
func ExampleDecoder() {
	sess := (&teltonika.Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP})
	stream, _ := hex.DecodeString("000f333536333037303432343431303133" +
		"000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf")
	for len(stream) > 0 {
		n, err := sess.Frame(stream)
		if err != nil || n == 0 {
			fmt.Println("framing:", n, err)
			return
		}
		res, err := sess.Decode(stream[:n], time.Now())
		if err != nil {
			fmt.Println("decoding:", err)
			return
		}
		fmt.Printf("reply %x, %d signal(s)\n", res.Ack, len(res.Signals))
		for _, s := range res.Signals {
			valid, _ := s.Valid.Bool() // no satellites in this record
			fmt.Println(s.DeviceID, s.TS.Format(time.RFC3339Nano), valid, s.Attrs["io21"], s.Attrs["io241"])
		}
		stream = stream[n:]
	}
	// Output:
	// reply 01, 0 signal(s)
	// reply 00000001, 1 signal(s)
	// 356307042441013 2019-06-10T10:04:46Z false 3 24602
}
