package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSeniorityOrdersOldestFirst(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	m := &Model{
		Users: []User{
			{Name: "late-user", Created: day(20)},
			{Name: "legacy-user"}, // made before creation times were kept
			{Name: "early-user", Created: day(2)},
		},
		Devices: []Device{
			{Name: "mid-device", Created: day(10)},
			{Name: "legacy-device"},
			{Name: "same-day-device", Created: day(20)},
		},
	}
	require.Equal(t, []string{
		"legacy-user", "legacy-device", "early-user", "mid-device", "late-user", "same-day-device",
	}, m.Seniority())
	require.Empty(t, (&Model{}).Seniority())
}
