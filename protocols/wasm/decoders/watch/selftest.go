package main

import "github.com/fleetcore/fleetcore/protocols/wasm/sdk"

// selfTests run in the host when the module loads: a link, a position, an
// alarm (acked), a ZJ alarm with its index, a health value, a refused
// frame and a voice chunk under both media settings.
var selfTests = []sdk.Test{
	{
		Name: "3G link, position, alarm, heart rate",
		Frames: []sdk.TestFrame{
			{Text: "[3G*4700186508*000B*LK,0,10,100]", RecvMs: 1767225600000, Want: sdk.Want{AckText: "[3G*4700186508*0002*LK]", Device: "4700186508", Signals: []map[string]any{
				{"device_id": "4700186508", "ts": "2026-01-01T00:00:00Z", "attrs": map[string]any{"steps": 0, "tumbles": 10, "battery_level": 100, "time_source": "server"}},
			}}},
			{Text: "[3G*4700186508*0021*UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,00000000,0,0]", Want: sdk.Want{NoAck: true, Signals: []map[string]any{
				{"ts": "2014-04-22T13:46:52Z", "lat": 22.571707, "lon": 113.8613968, "speed": 0.1, "alt": 100.0, "sats": 7.0, "valid": true, "attrs": map[string]any{"rssi": 60, "battery_level": 90, "steps": 1000, "type": "UD"}},
			}}},
			{Text: "[3G*4700186508*0050*AL,230817,095346,A,47.083950,N,15.4821850,E,7.60,273.8,0.0,4,15,44,0,0,00010000,0,0]", Want: sdk.Want{AckText: "[3G*4700186508*0002*AL]", Signals: []map[string]any{
				{"ts": "2017-08-23T09:53:46Z", "heading": 273.8, "attrs": map[string]any{"alarm": "sos", "status": 65536}},
			}}},
			{Text: "[3G*4700186508*0008*heart,71]", RecvMs: 1767225600000, Want: sdk.Want{NoAck: true, Signals: []map[string]any{
				{"ts": "2026-01-01T00:00:00Z", "attrs": map[string]any{"heart_rate": 71}},
			}}},
			{Text: "[3G*4700186508*0008*UD,bad]", Want: sdk.Want{Error: "malformed"}},
		},
	},
	{
		Name: "ZJ alarm with its index",
		Frames: []sdk.TestFrame{
			{Text: "[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,5,100,82,1000,50,00100000,1,255,460,0,9340,3663,35]", Want: sdk.Want{AckText: "[ZJ*014111001332708*0075*0002*AL]", Device: "014111001332708", Signals: []map[string]any{
				{"ts": "2018-04-04T05:21:56Z", "attrs": map[string]any{"alarm": "removing", "mcc": 460, "cells": `[{"lac":9340,"cid":3663,"rssi":35}]`}},
			}}},
		},
	},
	{
		Name: "voice chunk refused by default",
		Frames: []sdk.TestFrame{
			{Text: "[ZJ*789468050042692*0034*0025*JXTK,0,watch_7_1,1,6,#!AMR]", Want: sdk.Want{Error: "unsupported"}},
		},
	},
	{
		Name:    "voice chunk acked with media = ack",
		Options: map[string]string{"media": "ack"},
		Frames: []sdk.TestFrame{
			{Text: "[ZJ*789468050042692*0034*0025*JXTK,0,watch_7_1,1,6,#!AMR]", Want: sdk.Want{AckText: "[ZJ*789468050042692*0034*0007*JXTKR,1]", Signals: []map[string]any{}}},
		},
	},
}
