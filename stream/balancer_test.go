package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream/devbroker"
)

// testUnits returns units of one topic each, "<name>-events", all of hash
// "h".
func testUnits(names ...string) []Unit {
	units := make([]Unit, len(names))
	for i, name := range names {
		units[i] = Unit{Name: name, Topics: []string{name + "-events"}, Hash: "h"}
	}
	return units
}

// testPartitions lists partitions 0..count-1 of each topic.
func testPartitions(count int, topics ...string) []kafka.Partition {
	var out []kafka.Partition
	for _, topic := range topics {
		for id := range count {
			out = append(out, kafka.Partition{Topic: topic, ID: id})
		}
	}
	return out
}

// partitionsOfUnits lists count partitions of every topic of units.
func partitionsOfUnits(count int, units []Unit) []kafka.Partition {
	var topics []string
	for _, u := range units {
		topics = append(topics, u.Topics...)
	}
	return testPartitions(count, topics...)
}

// testMember is a group member as the unit tests simulate it.
type testMember struct {
	id       string
	balancer *UnitBalancer
}

func newTestMember(id string, units []Unit) testMember {
	return testMember{id: id, balancer: NewUnitBalancer(units, nil)}
}

// joinRequests returns what members send when they join: the topics of
// their units and their UserData.
func joinRequests(t testing.TB, members []testMember) []kafka.GroupMember {
	t.Helper()
	out := make([]kafka.GroupMember, len(members))
	for i, m := range members {
		data, err := m.balancer.UserData()
		if err != nil {
			t.Fatal(err)
		}
		var topics []string
		for _, u := range m.balancer.units {
			topics = append(topics, u.Topics...)
		}
		out[i] = kafka.GroupMember{ID: m.id, Topics: topics, UserData: data}
	}
	return out
}

// asGeneration turns one member's assignment into what its generation
// shows it.
func asGeneration(assigned map[string][]int) map[string][]kafka.PartitionAssignment {
	out := make(map[string][]kafka.PartitionAssignment)
	for topic, ids := range assigned {
		for _, id := range ids {
			out[topic] = append(out[topic], kafka.PartitionAssignment{ID: id, Offset: kafka.FirstOffset})
		}
	}
	return out
}

// rebalance runs one generation with leader as the group's leader: it
// assigns, then every member records what it got with SetOwned. It checks
// that units are whole and returns unit → owner.
func rebalance(t testing.TB, leader *UnitBalancer, members []testMember, units []Unit, partitions []kafka.Partition) map[string]string {
	t.Helper()
	got := leader.AssignGroups(joinRequests(t, members), partitions)
	for _, m := range members {
		m.balancer.SetOwned(m.balancer.UnitsOf(asGeneration(got[m.id])))
	}
	return ownersOf(t, got, units, partitions)
}

// ownersOf checks that assignments give each partition to at most one
// member, each topic whole to one member, every topic of a unit to the same
// member and no topic outside units to anyone; it returns unit → owner for
// the units held.
func ownersOf(t testing.TB, assignments kafka.GroupMemberAssignments, units []Unit, partitions []kafka.Partition) map[string]string {
	t.Helper()
	all := partitionsByTopic(partitions)
	holder := make(map[string]string) // topic → member
	for member, topics := range assignments {
		for topic, ids := range topics {
			if len(ids) == 0 {
				continue
			}
			if other, ok := holder[topic]; ok {
				t.Fatalf("topic %s is held by %s and %s", topic, other, member)
			}
			holder[topic] = member
			if got := slices.Sorted(slices.Values(ids)); !slices.Equal(got, all[topic]) {
				t.Fatalf("%s holds partitions %v of %s, want all of %v", member, got, topic, all[topic])
			}
		}
	}
	owners := make(map[string]string)
	inUnits := make(map[string]bool)
	for _, u := range units {
		held, unheld := map[string]bool{}, 0
		for _, topic := range u.Topics {
			inUnits[topic] = true
			if member, ok := holder[topic]; ok {
				held[member] = true
			} else if len(all[topic]) > 0 {
				unheld++
			}
		}
		switch {
		case len(held) > 1:
			t.Fatalf("unit %s is split between members %v", u.Name, slices.Sorted(maps.Keys(held)))
		case len(held) == 1 && unheld > 0:
			t.Fatalf("unit %s: %d of its topics with partitions are held by no one", u.Name, unheld)
		case len(held) == 1:
			for member := range held {
				owners[u.Name] = member
			}
		}
	}
	for topic, member := range holder {
		if !inUnits[topic] {
			t.Fatalf("topic %s belongs to no unit but %s holds it", topic, member)
		}
	}
	return owners
}

// loads returns how many units each member holds; members holding none
// count too.
func loads(owners map[string]string, members []testMember) map[string]int {
	out := make(map[string]int)
	for _, m := range members {
		out[m.id] = 0
	}
	for _, member := range owners {
		out[member]++
	}
	return out
}

func spread(loads map[string]int) int {
	values := slices.Collect(maps.Values(loads))
	return slices.Max(values) - slices.Min(values)
}

// moved counts the units whose owner differs between before and after,
// among the units before had.
func moved(before, after map[string]string) int {
	n := 0
	for unit, owner := range before {
		if after[unit] != owner {
			n++
		}
	}
	return n
}

func TestBalancerGivesAllPartitionsOfAUnitToOneMember(t *testing.T) {
	units := []Unit{
		{Name: "a", Topics: []string{"a-events", "a-labels"}, Hash: "h"},
		{Name: "b", Topics: []string{"b-events"}, Hash: "h"},
		{Name: "c", Topics: []string{"c-events"}, Hash: "h"},
		{Name: "d", Topics: []string{"d-events", "d-labels"}, Hash: "h"},
	}
	partitions := append(testPartitions(3, "a-events", "b-events"), testPartitions(2, "a-labels", "c-events", "d-labels")...)
	partitions = append(partitions, testPartitions(1, "d-events", "unrelated")...)
	members := []testMember{newTestMember("m1", units), newTestMember("m2", units), newTestMember("m3", units)}

	got := members[0].balancer.AssignGroups(joinRequests(t, members), partitions)
	owners := ownersOf(t, got, units, partitions)
	if len(owners) != len(units) {
		t.Fatalf("owners %v, want every one of the %d units owned", owners, len(units))
	}
	if a := got[owners["a"]]; !slices.Equal(a["a-events"], []int{0, 1, 2}) || !slices.Equal(a["a-labels"], []int{0, 1}) {
		t.Errorf("owner of unit a got %v, want a-events [0 1 2] and a-labels [0 1]", a)
	}
	for _, m := range members {
		if _, ok := got[m.id]; !ok {
			t.Errorf("member %s has no entry in the assignments", m.id)
		}
	}
}

func TestBalancerKeepsUnitCountsWithinOneAndMovesTheFewest(t *testing.T) {
	for memberCount := 1; memberCount <= 5; memberCount++ {
		for unitCount := 0; unitCount <= 9; unitCount++ {
			for _, previously := range []string{"none", "all with m0"} {
				t.Run(fmt.Sprintf("%d members, %d units, owned before by %s", memberCount, unitCount, previously), func(t *testing.T) {
					var names []string
					for i := range unitCount {
						names = append(names, fmt.Sprintf("u%d", i))
					}
					units := testUnits(names...)
					var members []testMember
					for i := range memberCount {
						members = append(members, newTestMember(fmt.Sprintf("m%d", i), units))
					}
					if previously != "none" {
						members[0].balancer.SetOwned(names)
					}
					owners := rebalance(t, members[0].balancer, members, units, partitionsOfUnits(2, units))
					if len(owners) != unitCount {
						t.Fatalf("%d units owned, want %d", len(owners), unitCount)
					}
					if l := loads(owners, members); spread(l) > 1 {
						t.Errorf("loads %v differ by more than one", l)
					}
					if previously != "none" {
						keeps := (unitCount + memberCount - 1) / memberCount
						if got := loads(owners, members)["m0"]; got != keeps {
							t.Errorf("the previous owner of all keeps %d units, want %d (the fewest moves)", got, keeps)
						}
					}
				})
			}
		}
	}
}

func TestBalancerMovesOnlyTheUnitsOfALeavingMemberAndTheFewestWhenItReturns(t *testing.T) {
	units := testUnits("u0", "u1", "u2", "u3", "u4", "u5")
	partitions := partitionsOfUnits(2, units)
	a, b, c := newTestMember("a", units), newTestMember("b", units), newTestMember("c", units)

	first := rebalance(t, a.balancer, []testMember{a, b, c}, units, partitions)
	if l := loads(first, []testMember{a, b, c}); spread(l) != 0 {
		t.Fatalf("first generation loads %v, want 2 each", l)
	}

	afterLeave := rebalance(t, a.balancer, []testMember{a, b}, units, partitions)
	for unit, owner := range first {
		if owner != "c" && afterLeave[unit] != owner {
			t.Errorf("unit %s moved from %s to %s when c left", unit, owner, afterLeave[unit])
		}
	}
	if l := loads(afterLeave, []testMember{a, b}); l["a"] != 3 || l["b"] != 3 {
		t.Errorf("after c left loads %v, want 3 each", l)
	}

	// c restarts: a new member ID, nothing owned.
	c = newTestMember("c2", units)
	afterReturn := rebalance(t, a.balancer, []testMember{a, b, c}, units, partitions)
	if n := moved(afterLeave, afterReturn); n != 2 {
		t.Errorf("%d units moved when c came back, want 2: before %v, after %v", n, afterLeave, afterReturn)
	}
	if l := loads(afterReturn, []testMember{a, b, c}); spread(l) != 0 {
		t.Errorf("after c came back loads %v, want 2 each", l)
	}
}

func TestBalancerMovesUnitsAlongAChainWhenEligibilityIsLimited(t *testing.T) {
	// a owned a, b and c; b owned d. c runs only d, so it can get a unit
	// only if b hands d over and takes one of a's.
	abc, all := testUnits("a", "b", "c"), testUnits("a", "b", "c", "d")
	memberA, memberB, memberC := newTestMember("ma", abc), newTestMember("mb", all), newTestMember("mc", testUnits("d"))
	memberA.balancer.SetOwned([]string{"a", "b", "c"})
	memberB.balancer.SetOwned([]string{"d"})
	before := map[string]string{"a": "ma", "b": "ma", "c": "ma", "d": "mb"}
	members := []testMember{memberA, memberB, memberC}

	after := rebalance(t, memberA.balancer, members, all, partitionsOfUnits(1, all))
	if l := loads(after, members); l["ma"] != 2 || l["mb"] != 1 || l["mc"] != 1 {
		t.Errorf("loads %v, want ma 2, mb 1, mc 1", l)
	}
	if after["d"] != "mc" {
		t.Errorf("unit d went to %s, want mc, the only other member running it", after["d"])
	}
	if n := moved(before, after); n != 2 {
		t.Errorf("%d units moved, want 2: %v", n, after)
	}
}

func TestBalancerMovesANewUnitRatherThanAnOwnedOne(t *testing.T) {
	// m0 owned u1 and m1 owned u0; of the new units, u2 and u5 run only on
	// m0 and u3 only on m1, so m0 ends up with four units before
	// balancing. It must pass on the new u4, not u1, which it owned.
	m0 := newTestMember("m0", testUnits("u0", "u1", "u2", "u4", "u5"))
	m1 := newTestMember("m1", testUnits("u0", "u1", "u3", "u4"))
	m0.balancer.SetOwned([]string{"u1"})
	m1.balancer.SetOwned([]string{"u0"})
	units := testUnits("u0", "u1", "u2", "u3", "u4", "u5")

	owners := rebalance(t, m0.balancer, []testMember{m0, m1}, units, partitionsOfUnits(1, units))
	if owners["u0"] != "m1" || owners["u1"] != "m0" {
		t.Errorf("owned units moved: %v", owners)
	}
	if l := loads(owners, []testMember{m0, m1}); l["m0"] != 3 || l["m1"] != 3 {
		t.Errorf("loads %v, want 3 each", l)
	}
}

func TestBalancerGivesAUnitOnlyToMembersOfItsReferenceHash(t *testing.T) {
	units := testUnits("a", "b", "c")
	changed := testUnits("a", "b", "c")
	changed[0].Hash, changed[1].Hash = "h2", "h2"
	var logs bytes.Buffer
	leader := testMember{"m1", NewUnitBalancer(units, slog.New(slog.NewTextHandler(&logs, nil)))}
	odd := newTestMember("m0", changed)       // first by ID: it would get a unit first
	odd.balancer.SetOwned([]string{"a", "b"}) // owning it before does not help
	members := []testMember{leader, newTestMember("m2", units), odd}

	owners := rebalance(t, leader.balancer, members, units, partitionsOfUnits(2, units))
	if owners["a"] == "m0" || owners["b"] == "m0" {
		t.Errorf("m0, which runs other models for a and b, got one of them: %v", owners)
	}
	if owners["c"] != "m0" {
		t.Errorf("unit c went to %s, want m0 (same hash, and the least loaded)", owners["c"])
	}
	mismatches := leader.balancer.Mismatches()
	if len(mismatches) != 2 {
		t.Fatalf("Mismatches() = %q, want one line for a and one for b", mismatches)
	}
	for i, unit := range []string{"a", "b"} {
		for _, want := range []string{fmt.Sprintf("unit %q", unit), `members m1, m2 declare hash "h"`, `members m0 declare hash "h2"`} {
			if !strings.Contains(mismatches[i], want) {
				t.Errorf("mismatch %q does not say %s", mismatches[i], want)
			}
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one assignment, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "m0") || !strings.Contains(logs.String(), "h2") {
		t.Errorf("the warning does not name the member and its hash:\n%s", logs.String())
	}

	rebalance(t, leader.balancer, members[:2], units, partitionsOfUnits(2, units)) // m0 leaves
	if got := leader.balancer.Mismatches(); got != nil {
		t.Errorf("after m0 left, Mismatches() = %q, want nil", got)
	}
}

func TestBalancerPicksTheReferenceHash(t *testing.T) {
	tests := []struct {
		name     string
		hashes   map[string]string // member → its hash of unit a
		lastOwns string            // member that owned a last, if any
		want     []string          // members eligible for a
	}{
		{"the hash most members declare wins", map[string]string{"m1": "h1", "m2": "h2", "m3": "h2"}, "m1", []string{"m2", "m3"}},
		{"a tie goes to the last owner's hash", map[string]string{"m1": "h1", "m2": "h2"}, "m2", []string{"m2"}},
		{"a tie without a last owner goes to the smallest hash", map[string]string{"m1": "hb", "m2": "ha"}, "", []string{"m2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []testMember
			for _, id := range slices.Sorted(maps.Keys(tt.hashes)) {
				m := newTestMember(id, []Unit{{Name: "a", Topics: []string{"a-events"}, Hash: tt.hashes[id]}})
				if id == tt.lastOwns {
					m.balancer.SetOwned([]string{"a"})
				}
				members = append(members, m)
			}
			got := members[0].balancer.AssignGroups(joinRequests(t, members), testPartitions(1, "a-events"))
			owner := ""
			for id, topics := range got {
				if len(topics["a-events"]) > 0 {
					owner = id
				}
			}
			if !slices.Contains(tt.want, owner) {
				t.Errorf("unit a went to %q, want one of %v", owner, tt.want)
			}
		})
	}
}

func TestBalancerGivesNothingToMembersWithUnreadableUserData(t *testing.T) {
	units := testUnits("a", "b", "c")
	topics := []string{"a-events", "b-events", "c-events"}
	var logs bytes.Buffer
	leader := testMember{"good1", NewUnitBalancer(units, slog.New(slog.NewTextHandler(&logs, nil)))}
	members := joinRequests(t, []testMember{leader, newTestMember("good2", units)})
	bad := map[string][]byte{
		"empty":        nil,
		"no-version":   []byte(`{"units":[{"name":"a","hash":"h","topics":["a-events"]}]}`),
		"version-2":    append([]byte{2}, `{"units":[{"name":"a","hash":"h","topics":["a-events"]}]}`...),
		"not-json":     {1, 'x', 0xff},
		"wrong-shape":  append([]byte{1}, `{"units":"a","owned":7}`...),
		"only-version": {1},
	}
	for id, data := range bad {
		members = append(members, kafka.GroupMember{ID: id, Topics: topics, UserData: data})
	}

	got := leader.balancer.AssignGroups(members, testPartitions(2, topics...))
	owners := ownersOf(t, got, units, testPartitions(2, topics...))
	if len(owners) != len(units) {
		t.Errorf("owners %v, want every unit owned by the readable members", owners)
	}
	for unit, owner := range owners {
		if !strings.HasPrefix(owner, "good") {
			t.Errorf("unit %s went to %s, whose user data is unreadable", unit, owner)
		}
	}
	for id := range bad {
		if topics, ok := got[id]; !ok || len(topics) != 0 {
			t.Errorf("member %s got %v, want an empty assignment", id, topics)
		}
		if !strings.Contains(logs.String(), id+": stream: unreadable balancer user data") {
			t.Errorf("the log does not name member %s:\n%s", id, logs.String())
		}
	}

	// No readable member at all: nothing assigned, no panic.
	onlyBad := members[2:]
	got = leader.balancer.AssignGroups(onlyBad, testPartitions(2, topics...))
	if owners := ownersOf(t, got, units, testPartitions(2, topics...)); len(owners) != 0 {
		t.Errorf("owners %v with no readable member, want none", owners)
	}
}

// FuzzBalancerUserData checks that no member's user data makes the leader
// panic, share a partition or split a topic. (It may win a unit for a
// configuration of its own, so not every unit need be owned.)
func FuzzBalancerUserData(f *testing.F) {
	units := testUnits("a", "b")
	good := newTestMember("m1", units)
	seed, err := good.balancer.UserData()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{1, '{', '}'})
	f.Add([]byte("\x01{\"units\":[{\"nAme\":\"a\"}]}")) // a unit without topics
	f.Add(append([]byte{1}, `{"units":[{"name":"a","hash":"","topics":["b-events"]}],"owned":["a","b"],"generation":-3}`...))
	f.Add(append([]byte{1}, `{"units":[{"name":"","topics":null},{"name":"b","hash":"h","topics":["b-events","b-events"]}]}`...))
	topicsAsUnits := []Unit{{Name: "a", Topics: []string{"a-events"}}, {Name: "b", Topics: []string{"b-events"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		partitions := partitionsOfUnits(2, units)
		members := append(joinRequests(t, []testMember{good}),
			kafka.GroupMember{ID: "m2", Topics: []string{"a-events", "b-events"}, UserData: data})
		got := good.balancer.AssignGroups(members, partitions)
		ownersOf(t, got, topicsAsUnits, partitions)
		if len(got) != 2 {
			t.Errorf("assignments for %d members, want 2", len(got))
		}
	})
}

func TestBalancerIsDeterministic(t *testing.T) {
	units := testUnits("u0", "u1", "u2", "u3", "u4", "u5", "u6")
	other := testUnits("u0", "u1", "u2", "u3", "u4", "u5", "u6")
	other[2].Hash = "h2"
	var members []testMember
	for i, us := range [][]Unit{units, units, other, units, units[:4]} {
		members = append(members, newTestMember(fmt.Sprintf("m%d", i), us))
	}
	members[0].balancer.SetOwned([]string{"u0", "u1", "u2", "u3"})
	members[1].balancer.SetOwned([]string{"u3", "u4"}) // u3 is contested
	members[2].balancer.SetOwned([]string{"u2"})
	requests := joinRequests(t, members)
	partitions := partitionsOfUnits(3, units)

	want := members[0].balancer.AssignGroups(requests, partitions)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		shuffledMembers, shuffledPartitions := slices.Clone(requests), slices.Clone(partitions)
		rng.Shuffle(len(shuffledMembers), func(i, j int) { shuffledMembers[i], shuffledMembers[j] = shuffledMembers[j], shuffledMembers[i] })
		rng.Shuffle(len(shuffledPartitions), func(i, j int) {
			shuffledPartitions[i], shuffledPartitions[j] = shuffledPartitions[j], shuffledPartitions[i]
		})
		leader := members[round%len(members)].balancer // any member may lead
		if got := leader.AssignGroups(shuffledMembers, shuffledPartitions); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d, leader %d: assignments\n%v\nwant\n%v", round, round%len(members), got, want)
		}
	}
}

func TestBalancerGivesAContestedUnitToItsMostRecentOwner(t *testing.T) {
	units := testUnits("a", "b")
	partitions := partitionsOfUnits(1, units)
	holdsA := map[string][]kafka.PartitionAssignment{"a-events": {{ID: 0}}}
	tests := []struct {
		name       string
		gen1, gen2 int32 // generations of m1's and m2's claims; 0: SetOwned
		want       string
	}{
		{"the later generation wins", 5, 7, "m2"},
		{"the later generation wins whatever the member IDs", 7, 5, "m1"},
		{"claims without generations go to the smallest member ID", 0, 0, "m1"},
		{"a claim with a generation beats one without", 0, 3, "m2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m1, m2 := newTestMember("m1", units), newTestMember("m2", units)
			for _, c := range []struct {
				m   testMember
				gen int32
			}{{m1, tt.gen1}, {m2, tt.gen2}} {
				if c.gen == 0 {
					c.m.balancer.SetOwned([]string{"a"})
				} else if got := c.m.balancer.Joined(&kafka.Generation{ID: c.gen, Assignments: holdsA}); !slices.Equal(got, []string{"a"}) {
					t.Fatalf("Joined = %v, want [a]", got)
				}
			}
			owners := rebalance(t, m1.balancer, []testMember{m1, m2}, units, partitions)
			if owners["a"] != tt.want {
				t.Errorf("unit a went to %s, want %s", owners["a"], tt.want)
			}
			if owners["b"] == owners["a"] {
				t.Errorf("both units went to %s", owners["a"])
			}
		})
	}
}

func TestBalancerAssignsOnlyPartitionsOfUnitsAndSkipsUnitsWithoutAny(t *testing.T) {
	units := []Unit{
		{Name: "a", Topics: []string{"a-events", "a-labels"}, Hash: "h"}, // a-labels not created yet
		{Name: "a2", Topics: []string{"a2-events"}, Hash: "h"},           // not created yet
		{Name: "b", Topics: []string{"b-events"}, Hash: "h"},
	}
	partitions := append(testPartitions(2, "a-events", "b-events"), testPartitions(3, "unrelated")...)
	members := []testMember{newTestMember("m1", units), newTestMember("m2", units)}

	got := members[0].balancer.AssignGroups(joinRequests(t, members), partitions)
	owners := ownersOf(t, got, units, partitions)
	if _, ok := owners["a"]; !ok {
		t.Errorf("unit a, one of whose topics has partitions, is not assigned: %v", got)
	}
	if _, ok := owners["a2"]; ok {
		t.Errorf("unit a2, without partitions, is assigned: %v", got)
	}
	if owners["a"] == owners["b"] {
		t.Errorf("a and b both went to %s: unit a2, which has no partitions, was counted", owners["a"])
	}
	for member, topics := range got {
		for _, topic := range []string{"a-labels", "a2-events", "unrelated"} {
			if _, ok := topics[topic]; ok {
				t.Errorf("%s got an entry for %s, which has no partitions or belongs to no unit", member, topic)
			}
		}
	}
}

func TestBalancerGivesATopicDeclaredByTwoUnitsToTheFirst(t *testing.T) {
	units := []Unit{
		{Name: "a", Topics: []string{"a-events", "shared"}, Hash: "h"},
		{Name: "b", Topics: []string{"b-events", "shared"}, Hash: "h"},
	}
	partitions := testPartitions(2, "a-events", "b-events", "shared")
	members := []testMember{newTestMember("m1", units), newTestMember("m2", units)}

	got := members[0].balancer.AssignGroups(joinRequests(t, members), partitions)
	owners := ownersOf(t, got, []Unit{units[0], {Name: "b", Topics: []string{"b-events"}}}, partitions)
	if owners["a"] == "" || owners["b"] == "" || owners["a"] == owners["b"] {
		t.Errorf("owners %v, want a (with shared) and b on different members", owners)
	}
	mismatches := members[0].balancer.Mismatches()
	if len(mismatches) != 1 || !strings.Contains(mismatches[0], `topic "shared" is declared by units "a" and "b"`) {
		t.Errorf("Mismatches() = %q, want the shared topic reported", mismatches)
	}
}

func TestBalancerGivesAUnitOnlyToMembersSubscribedToAllItsTopics(t *testing.T) {
	units := []Unit{{Name: "a", Topics: []string{"a-events", "a-labels"}, Hash: "h"}}
	partitions := testPartitions(2, "a-events", "a-labels")
	m1, m2 := newTestMember("m1", units), newTestMember("m2", units)
	m1.balancer.SetOwned([]string{"a"})
	requests := joinRequests(t, []testMember{m1, m2})
	requests[0].Topics = []string{"a-events"} // m1's consumer forgot the labels topic

	got := m1.balancer.AssignGroups(requests, partitions)
	if owners := ownersOf(t, got, units, partitions); owners["a"] != "m2" {
		t.Errorf("unit a went to %q, want m2, the member that subscribes to a-labels", owners["a"])
	}
}

func TestBalancerUserDataCarriesUnitsAndWhatItOwned(t *testing.T) {
	b := NewUnitBalancer([]Unit{
		{Name: "b", Topics: []string{"b-events"}, Hash: "hb"},
		{Name: "a", Topics: []string{"a-labels", "a-events", "a-labels"}, Hash: "ha"},
		{Name: "a", Topics: []string{"elsewhere"}, Hash: "duplicate"},
		{Topics: []string{"nameless"}},
	}, nil)
	if b.ProtocolName() != "eddy-units-v1" {
		t.Errorf("ProtocolName() = %q", b.ProtocolName())
	}
	gen := &kafka.Generation{ID: 4, Assignments: map[string][]kafka.PartitionAssignment{
		"a-labels": {{ID: 1}}, "b-events": {}, "unrelated": {{ID: 0}},
	}}
	if got := b.Joined(gen); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Joined = %v, want [a]: b has no partition in the generation", got)
	}
	data, err := b.UserData()
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 1 {
		t.Fatalf("version byte %d, want 1", data[0])
	}
	var decoded map[string]any
	if err := json.Unmarshal(data[1:], &decoded); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"units": []any{
			map[string]any{"name": "a", "hash": "ha", "topics": []any{"a-events", "a-labels"}},
			map[string]any{"name": "b", "hash": "hb", "topics": []any{"b-events"}},
		},
		"owned":      []any{"a"},
		"generation": float64(4),
	}
	if !reflect.DeepEqual(decoded, want) {
		t.Errorf("user data %s, want %v", data[1:], want)
	}

	b.SetOwned(nil)
	data, _ = b.UserData()
	if bytes.Contains(data, []byte("owned")) || bytes.Contains(data, []byte("generation")) {
		t.Errorf("user data %s still claims units after SetOwned(nil)", data[1:])
	}
}

// groupRecorder records what every member of a real group is assigned,
// generation by generation.
type groupRecorder struct {
	mu      sync.Mutex
	latest  map[string]memberGeneration            // member → its latest generation
	history map[int32]kafka.GroupMemberAssignments // generation → member → topic → partitions
}

type memberGeneration struct {
	id    int32
	ended bool
}

func newGroupRecorder() *groupRecorder {
	return &groupRecorder{latest: make(map[string]memberGeneration), history: make(map[int32]kafka.GroupMemberAssignments)}
}

func (r *groupRecorder) started(member string, gen *kafka.Generation) {
	assigned := make(map[string][]int)
	for topic, as := range gen.Assignments {
		for _, a := range as {
			assigned[topic] = append(assigned[topic], a.ID)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest[member] = memberGeneration{id: gen.ID}
	if r.history[gen.ID] == nil {
		r.history[gen.ID] = make(kafka.GroupMemberAssignments)
	}
	r.history[gen.ID][member] = assigned
}

func (r *groupRecorder) ended(member string, id int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest[member].id == id {
		r.latest[member] = memberGeneration{id: id, ended: true}
	}
}

// settledGeneration returns the generation that exactly members are in and
// still run, or 0.
func (r *groupRecorder) settledGeneration(members []string) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.latest[members[0]]
	if first.id == 0 || len(r.history[first.id]) != len(members) {
		return 0
	}
	for _, m := range members {
		if g := r.latest[m]; g.id != first.id || g.ended {
			return 0
		}
	}
	return first.id
}

// assignments returns what the members of generation id were assigned.
func (r *groupRecorder) assignments(id int32) kafka.GroupMemberAssignments {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.history[id])
}

// settle waits until exactly members share one generation, unchanged for a
// second, and returns its unit → owner, having checked that every unit is
// owned, whole, by one member.
func (r *groupRecorder) settle(ctx context.Context, t *testing.T, units []Unit, partitions []kafka.Partition, members ...string) map[string]string {
	t.Helper()
	var candidate int32
	var since time.Time
	for {
		switch id := r.settledGeneration(members); {
		case id == 0:
			candidate = 0
		case id != candidate:
			candidate, since = id, time.Now()
		case time.Since(since) >= time.Second:
			owners := ownersOf(t, r.assignments(id), units, partitions)
			if len(owners) != len(units) {
				t.Fatalf("generation %d: owners %v, want all %d units owned", id, owners, len(units))
			}
			return owners
		}
		select {
		case <-ctx.Done():
			t.Fatalf("members %v never settled in one generation", members)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startUnitMember runs a real group member with its own UnitBalancer until
// the returned stop is called (or the test ends), recording its
// generations.
func startUnitMember(ctx context.Context, t *testing.T, addr, name string, units []Unit, rec *groupRecorder) (*UnitBalancer, func()) {
	t.Helper()
	balancer := NewUnitBalancer(units, nil)
	var topics []string
	for _, u := range units {
		topics = append(topics, u.Topics...)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                "balancer-test",
		Brokers:           []string{addr},
		Topics:            topics,
		GroupBalancers:    []kafka.GroupBalancer{balancer},
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			gen, err := group.Next(ctx)
			if errors.Is(err, kafka.ErrGroupClosed) || ctx.Err() != nil {
				return
			}
			if err != nil {
				continue // a failed join: kafka-go backs off and retries
			}
			balancer.SetOwned(balancer.UnitsOf(gen.Assignments))
			rec.started(name, gen)
			// The generation lasts until the group rebalances (its
			// heartbeat fails) or closes.
			gen.Start(func(gctx context.Context) {
				<-gctx.Done()
				rec.ended(name, gen.ID)
			})
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			group.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return balancer, stop
}

func TestBalancerInARealGroupKeepsUnitsWholeAndStickyAsMembersComeAndGo(t *testing.T) {
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	specs := []TopicSpec{{Name: "a-events", Partitions: 3}, {Name: "a-labels", Partitions: 2}, {Name: "b-events", Partitions: 4}, {Name: "c-events", Partitions: 2}}
	if err := EnsureTopics(ctx, []string{broker.Addr()}, specs); err != nil {
		t.Fatal(err)
	}
	var partitions []kafka.Partition
	for _, s := range specs {
		partitions = append(partitions, testPartitions(s.Partitions, s.Name)...)
	}
	units := []Unit{
		{Name: "a", Topics: []string{"a-events", "a-labels"}, Hash: "ha"},
		{Name: "b", Topics: []string{"b-events"}, Hash: "hb"},
		{Name: "c", Topics: []string{"c-events"}, Hash: "hc"},
	}
	rec := newGroupRecorder()
	unitsOf := func(owners map[string]string, member string) []string {
		var held []string
		for _, unit := range slices.Sorted(maps.Keys(owners)) {
			if owners[unit] == member {
				held = append(held, unit)
			}
		}
		return held
	}
	keeps := func(t *testing.T, what string, before, after map[string]string, members ...string) {
		t.Helper()
		for _, m := range members {
			for _, unit := range unitsOf(before, m) {
				if after[unit] != m {
					t.Errorf("%s: unit %s moved from %s to %s (before %v, after %v)", what, unit, m, after[unit], before, after)
				}
			}
		}
	}

	b1, stop1 := startUnitMember(ctx, t, broker.Addr(), "m1", units, rec)
	b2, _ := startUnitMember(ctx, t, broker.Addr(), "m2", units, rec)
	two := rec.settle(ctx, t, units, partitions, "m1", "m2")
	if n1, n2 := len(unitsOf(two, "m1")), len(unitsOf(two, "m2")); n1+n2 != 3 || n1 == 0 || n2 == 0 {
		t.Errorf("two members hold %v, want 2 units and 1", two)
	}

	b3, _ := startUnitMember(ctx, t, broker.Addr(), "m3", units, rec)
	three := rec.settle(ctx, t, units, partitions, "m1", "m2", "m3")
	for _, m := range []string{"m1", "m2", "m3"} {
		if len(unitsOf(three, m)) != 1 {
			t.Errorf("three members hold %v, want one unit each", three)
		}
	}
	if n := moved(two, three); n != 1 {
		t.Errorf("%d units moved when m3 joined, want 1 (before %v, after %v)", n, two, three)
	}

	stop1()
	afterLeave := rec.settle(ctx, t, units, partitions, "m2", "m3")
	keeps(t, "m1 left", three, afterLeave, "m2", "m3")

	// No settled or passing generation ever split or shared a unit.
	rec.mu.Lock()
	ids := slices.Sorted(maps.Keys(rec.history))
	rec.mu.Unlock()
	for _, id := range ids {
		ownersOf(t, rec.assignments(id), units, partitions)
	}
	for i, b := range []*UnitBalancer{b1, b2, b3} {
		if got := b.Mismatches(); got != nil {
			t.Errorf("member %d reports mismatches %q in a group of one configuration", i+1, got)
		}
	}
}
