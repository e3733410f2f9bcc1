package policy

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzLoadAndCompile: any input either fails to load or compile with an
// error, or gives a snapshot whose questions can be asked without panic.
func FuzzLoadAndCompile(f *testing.F) {
	story, err := json.Marshal(storyModel())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(story)
	f.Add([]byte(`{"groups":[{"name":"a","subgroups":["b"]},{"name":"b","subgroups":["a"]}]}`))
	f.Add([]byte(`{"relations":[{"name":"r","from":"vpn_user_group","to":"vpn_user_group","direction":"both","services":["tcp/1-2,5","icmp/8","proto/47"]}]}`))
	f.Add([]byte(`{"users":[{"name":"u","groups":["vpn_user_group"],"roles":["admin"]}],"groups":[{"name":"vpn_user_group","intra":true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		s, err := Compile(m)
		if err != nil {
			return
		}
		var names []string
		for _, u := range m.Users {
			names = append(names, u.Name)
		}
		for _, d := range m.Devices {
			names = append(names, d.Name)
		}
		ff := NewFlowFilter(s, FlowFilterConfig{Size: 16})
		for _, a := range names {
			s.Can(a, AllRights)
			_ = s.ExplainCan(a, RightConnectVPN)
			for _, b := range names {
				for _, proto := range []uint8{ProtoTCP, ProtoICMP, 47} {
					fl := Flow{Proto: proto, DstPort: 102, ICMPType: 8}
					fl.From, _ = s.Lookup(a)
					fl.To, _ = s.Lookup(b)
					d := ff.Check(&fl, now)
					_ = s.Explain(&fl, d)
				}
			}
		}
		// What loaded must survive a round trip through JSON.
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal a loaded model: %v", err)
		}
		if _, err := Load(bytes.NewReader(again)); err != nil {
			t.Fatalf("a marshalled model does not load: %v\n%s", err, again)
		}
	})
}
