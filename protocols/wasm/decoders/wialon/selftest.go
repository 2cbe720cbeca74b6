package main

import "github.com/fleetcore/fleetcore/protocols/wasm/sdk"

// selfTests run in the host when the module loads: a 1.1 conversation
// over TCP, a 2.0 one with CRCs (and a refused bad CRC), and a UDP 2.0
// datagram naming its device.
var selfTests = []sdk.Test{
	{
		Name: "1.1 login, data, ping, black box",
		Frames: []sdk.TestFrame{
			{Text: "#L#123456789012345;test\r\n", Want: sdk.Want{AckHex: hexOf("#AL#1\r\n"), Device: "123456789012345", Signals: []map[string]any{}}},
			{Text: "#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n", Want: sdk.Want{AckHex: hexOf("#ASD#1\r\n"), Signals: []map[string]any{
				{"device_id": "123456789012345", "ts": "2013-04-27T20:56:01Z", "lat": 55.74337500000001, "lon": 37.66139, "speed": 1.0, "heading": 2.0, "alt": 3.0, "sats": 4.0, "valid": true},
			}}},
			{Text: "#D#151216;140203;5312.59514;N;04830.37834;E;53;273;NA;10;NA;NA;NA;NA;NA;EvId:1:1,Board:2:12.81,Accum:2:4.28\r\n", Want: sdk.Want{AckHex: hexOf("#AD#1\r\n"), Signals: []map[string]any{
				{"ts": "2016-12-15T14:02:03Z", "attrs": map[string]any{"evid": 1, "board": 12.81, "accum": 4.28}},
			}}},
			{Text: "#P#\r\n", Want: sdk.Want{AckHex: hexOf("#AP#\r\n"), Signals: []map[string]any{}}},
			{Text: "#B#080914;073235;5027.50625;N;03026.19321;E;0.700;0.000;NA;4;NA;NA;NA;;NA;|080914;073420;5027.50845;N;03026.18854;E;1.996;292.540;NA;4;NA;NA;NA;;NA;\r\n", Want: sdk.Want{AckHex: hexOf("#AB#2\r\n"), Signals: []map[string]any{
				{"ts": "2014-09-08T07:32:35Z", "attrs": map[string]any{"archive": true}}, {"ts": "2014-09-08T07:34:20Z"},
			}}},
		},
	},
	{
		Name: "2.0 login and data with CRC-16",
		Frames: []sdk.TestFrame{
			{Text: "#D#151216;140203;5312.59514;N;04830.37834;E;53;273;NA;10;NA;NA;NA;NA;NA;;0000\r\n", Want: sdk.Want{Error: "no_device"}},
			{Text: "#L#2.0;42001300083;NA;" + crcOf("2.0;42001300083;NA;") + "\r\n", Want: sdk.Want{AckHex: hexOf("#AL#1\r\n"), Device: "42001300083"}},
			{Text: "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01\r\n", Want: sdk.Want{AckHex: hexOf("#ASD#1\r\n"), Signals: []map[string]any{
				{"device_id": "42001300083", "ts": "2024-09-30T15:42:45Z", "speed": 2.92},
			}}},
			{Text: "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A02\r\n", Want: sdk.Want{Error: "checksum"}},
		},
	},
	{
		Name:      "2.0 UDP datagram naming its device",
		Transport: sdk.UDP,
		Frames: []sdk.TestFrame{
			{Text: "2.0;99999999#D#101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249;" + crcOf("101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249;") + "\r\n",
				Want: sdk.Want{AckHex: hexOf("#AD#1\r\n"), Device: "99999999", Signals: []map[string]any{{"ts": "2018-11-10T06:11:43Z", "alt": -4.0, "hdop": 0.8, "attrs": map[string]any{"101_521347": 521249}}}}},
		},
	},
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(b)
}

func crcOf(s string) string {
	const digits = "0123456789ABCDEF"
	c := CRC16(s)
	return string([]byte{digits[c>>12], digits[c>>8&15], digits[c>>4&15], digits[c&15]})
}
