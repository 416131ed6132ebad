package stream

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"
)

// Unit is one unit of ownership as a member declares it: a set of models
// and every topic they read. Models that share a topic are one unit, so no
// topic belongs to two units.
type Unit struct {
	// Name identifies the unit across members and restarts, e.g. the names
	// of its models joined.
	Name string
	// Topics are every topic of the unit: events topics and labels topics.
	Topics []string
	// Hash identifies the unit's model configuration. Members whose Hash
	// differs for the same Name run different models.
	Hash string
	// Standby asks every member that does not own the unit to follow it
	// (Owner.Follow): its models keep entity histories that serving reads.
	// The balancer itself ignores it.
	Standby bool
}

// UnitProtocol is the group protocol name of a UnitBalancer. A breaking
// change to the UserData format gets a new name, so that the broker never
// makes members of two formats one group.
const UnitProtocol = "eddy-units-v1"

// unitUserDataVersion is the first byte of a UnitBalancer's UserData.
// Compatible additions (new JSON fields, which older leaders ignore) keep
// it; see UnitProtocol for breaking changes.
const unitUserDataVersion byte = 1

// errUserData reports a member's UserData that a UnitBalancer cannot read.
var errUserData = errors.New("stream: unreadable balancer user data")

// UnitBalancer is a kafka-go GroupBalancer that assigns whole units: every
// partition of every topic of a unit goes to one member, so exactly one
// member learns a unit at a time. Give each ConsumerGroup its own
// UnitBalancer, as its only GroupBalancer (offered next to another, it
// would let a member that knows only the other make the whole group use
// it), and Topics that include every topic of its units.
//
// Each member declares its units in its UserData (name, hash and topics)
// together with the units it owned in the last generation it joined (see
// SetOwned and Joined). The leader's AssignGroups then applies these rules:
//
//  1. A unit goes only to a member that declares it with the unit's
//     reference configuration: the hash (and topics) declared by most
//     members; on a tie, the one declared by the unit's last owner, else the
//     lexicographically smallest. Members declaring another configuration
//     never get the unit; Mismatches lists them and one warning per
//     AssignGroups names the units, members and hashes. A member that
//     declares a unit without subscribing to all its topics is not given it
//     either (kafka-go would drop the unsubscribed topics' partitions).
//  2. A unit stays with its last owner while that owner is present and
//     eligible. A unit without one goes to the eligible member with the
//     fewest units (ties: smallest member ID). Then, while a member holds
//     at least two units more than another it can pass a unit to (directly,
//     or along a chain of members each eligible for the unit it receives),
//     the most loaded such member passes one to the least loaded, along the
//     shortest chain. When every member is eligible for every unit this
//     moves the fewest units possible and leaves counts that differ by at
//     most one; otherwise the counts end as even as eligibility allows
//     (no such chain is left), with few moves, not always the fewest.
//     Units are counted, not partitions: what a unit costs is its event
//     rate and its models, which its partition count does not tell.
//  3. When two members claim the same unit as last owned (a zombie's stale
//     UserData), the claim of the most recent generation wins (see Joined);
//     a claim without a generation (SetOwned) counts as older than any with
//     one; on equal generations, the smallest member ID wins.
//  4. Partitions of topics that belong to no unit are assigned to no one.
//     A unit none of whose topics has partitions (not created yet) is not
//     assigned and does not count; a unit some of whose topics have
//     partitions is assigned those. A topic declared by two units goes with
//     the first by name, and Mismatches reports it.
//  5. A member whose UserData cannot be read (empty: not an eddy member, or
//     an older one; another format or version) declares nothing: it gets no
//     partitions, and one warning per AssignGroups names it.
//
// The result depends only on the members' IDs, subscriptions and UserData
// and on the partitions, not on their order.
//
// UserData is the version byte 1 followed by a JSON object:
//
//	{"units":[{"name":"a","hash":"h1","topics":["a-events","a-labels"]}],
//	 "owned":["a"],"generation":7}
//
// owned and generation are left out when empty or unknown.
//
// # Concurrency
//
// kafka-go calls UserData and AssignGroups from the group's goroutine; the
// other methods may be called from any goroutine.
type UnitBalancer struct {
	units []Unit // sorted by name, each with sorted topics; read-only
	log   *slog.Logger

	mu         sync.Mutex
	owned      []string // sorted
	generation int32    // of owned; 0 when unknown
	mismatches []string
}

// NewUnitBalancer returns a balancer for a member that runs units. A unit
// without a name or topics, or with the name of an earlier one, is ignored
// (and logged). A nil log discards.
func NewUnitBalancer(units []Unit, log *slog.Logger) *UnitBalancer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &UnitBalancer{log: log.With("component", "balancer")}
	for _, u := range units {
		if u.Name == "" || len(u.Topics) == 0 || slices.ContainsFunc(b.units, func(v Unit) bool { return v.Name == u.Name }) {
			b.log.Warn("ignoring a unit without a name or topics, or with a duplicate name", "unit", u.Name, "topics", u.Topics)
			continue
		}
		b.units = append(b.units, Unit{Name: u.Name, Topics: sortedSet(u.Topics), Hash: u.Hash})
	}
	slices.SortFunc(b.units, func(x, y Unit) int { return strings.Compare(x.Name, y.Name) })
	return b
}

// ProtocolName returns UnitProtocol.
func (b *UnitBalancer) ProtocolName() string { return UnitProtocol }

// unitUserData is the JSON part of UserData.
type unitUserData struct {
	Units      []declaredUnit `json:"units"`
	Owned      []string       `json:"owned,omitempty"`
	Generation int32          `json:"generation,omitempty"`
}

type declaredUnit struct {
	Name   string   `json:"name"`
	Hash   string   `json:"hash"`
	Topics []string `json:"topics"`
}

// UserData returns this member's units and the units it owned in the last
// generation it joined. kafka-go calls it at every JoinGroup.
func (b *UnitBalancer) UserData() ([]byte, error) {
	data := unitUserData{Units: make([]declaredUnit, 0, len(b.units))}
	for _, u := range b.units {
		data.Units = append(data.Units, declaredUnit{Name: u.Name, Hash: u.Hash, Topics: u.Topics})
	}
	b.mu.Lock()
	data.Owned, data.Generation = b.owned, b.generation
	encoded, err := json.Marshal(data)
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("stream: encode balancer user data: %w", err)
	}
	return append([]byte{unitUserDataVersion}, encoded...), nil
}

// SetOwned records the units this member owns in the generation that just
// started, so that the next UserData claims them. Call it as soon as the
// group's Next returns a generation: kafka-go calls UserData again as soon
// as that generation ends. Joined does the same and also records the
// generation, which settles contested claims (rule 3); prefer it.
func (b *UnitBalancer) SetOwned(units []string) { b.setOwned(0, units) }

// Joined records the units gen assigns to this member, like SetOwned, with
// gen.ID, and returns their names.
func (b *UnitBalancer) Joined(gen *kafka.Generation) []string {
	units := b.UnitsOf(gen.Assignments)
	b.setOwned(gen.ID, units)
	return units
}

func (b *UnitBalancer) setOwned(generation int32, units []string) {
	owned := sortedSet(units)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.owned, b.generation = owned, generation
}

// UnitsOf returns, sorted, the names of this member's units of which
// assignments (a generation's, topic → partitions) holds a partition.
func (b *UnitBalancer) UnitsOf(assignments map[string][]kafka.PartitionAssignment) []string {
	var names []string
	for _, u := range b.units {
		if slices.ContainsFunc(u.Topics, func(t string) bool { return len(assignments[t]) > 0 }) {
			names = append(names, u.Name)
		}
	}
	return names
}

// Mismatches returns what the last AssignGroups this member ran as leader
// found, one line per conflict, or nil: a unit whose members declare
// different configurations (which members, which hashes), or a topic that
// two units declare. It is not cleared when another member leads.
func (b *UnitBalancer) Mismatches() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.mismatches)
}

// AssignGroups assigns whole units to members by the rules of the type's
// documentation. Every member gets an entry, possibly empty.
func (b *UnitBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	declared, unusable := b.readMembers(members)
	plans, mismatches := planUnits(declared)
	mismatches = append(mismatches, claimTopics(plans)...)
	byTopic := partitionsByTopic(partitions)
	plans, skipped := withPartitions(plans, byTopic)

	p := newPlacement(plans)
	p.balance()

	assignments := make(kafka.GroupMemberAssignments, len(declared))
	for _, m := range declared {
		assignments[m.id] = make(map[string][]int)
	}
	moved := 0
	for _, u := range plans {
		owner := p.owner[u.name]
		for _, topic := range u.topics {
			if ids := byTopic[topic]; len(ids) > 0 {
				assignments[owner][topic] = slices.Clone(ids)
			}
		}
		if u.previous != "" && u.previous != owner {
			moved++
		}
	}

	b.mu.Lock()
	b.mismatches = mismatches
	b.mu.Unlock()
	if len(unusable) > 0 {
		b.log.Warn("ignoring balancer user data that cannot be used; those members get none of the units concerned", "problems", unusable)
	}
	if len(mismatches) > 0 {
		b.log.Warn("members disagree on unit configurations; units go only to members of each unit's reference configuration",
			"mismatches", mismatches)
	}
	b.log.Info("units assigned", "members", len(declared), "units", len(plans), "moved", moved, "without_partitions", skipped)
	return assignments
}

// groupMember is a member as AssignGroups reads it.
type groupMember struct {
	id         string
	declared   map[string]declaredUnit // by name
	owned      map[string]bool
	generation int32
}

// readMembers decodes the members' UserData, sorted by member ID. It
// returns, one line each, the members whose UserData is unreadable and the
// declarations dropped because the member does not subscribe to all the
// unit's topics.
func (b *UnitBalancer) readMembers(members []kafka.GroupMember) ([]groupMember, []string) {
	members = slices.Clone(members)
	slices.SortFunc(members, func(x, y kafka.GroupMember) int { return strings.Compare(x.ID, y.ID) })
	members = slices.CompactFunc(members, func(x, y kafka.GroupMember) bool { return x.ID == y.ID })
	var out []groupMember
	var problems []string
	for _, m := range members {
		gm := groupMember{id: m.ID, declared: make(map[string]declaredUnit), owned: make(map[string]bool)}
		data, err := decodeUnitUserData(m.UserData)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m.ID, err))
			out = append(out, gm)
			continue
		}
		for _, u := range data.Units {
			u.Topics = sortedSet(u.Topics)
			if _, dup := gm.declared[u.Name]; dup || u.Name == "" || len(u.Topics) == 0 {
				continue // a repeat, or nothing to assign (which must not outvote a real declaration)
			}
			if missing := missingTopics(u.Topics, m.Topics); len(missing) > 0 {
				problems = append(problems, fmt.Sprintf("%s: declares unit %q but does not subscribe to %v", m.ID, u.Name, missing))
				continue
			}
			gm.declared[u.Name] = u
		}
		for _, name := range data.Owned {
			gm.owned[name] = true
		}
		gm.generation = data.Generation
		out = append(out, gm)
	}
	return out, problems
}

func decodeUnitUserData(raw []byte) (unitUserData, error) {
	var data unitUserData
	switch {
	case len(raw) == 0:
		return data, fmt.Errorf("%w: empty", errUserData)
	case raw[0] != unitUserDataVersion:
		return data, fmt.Errorf("%w: version %d, want %d", errUserData, raw[0], unitUserDataVersion)
	}
	if err := json.Unmarshal(raw[1:], &data); err != nil {
		return data, fmt.Errorf("%w: %v", errUserData, err)
	}
	return data, nil
}

// unitPlan is a unit as the leader assigns it.
type unitPlan struct {
	name     string
	topics   []string // of the reference configuration, less those another unit took
	eligible []string // members declaring the reference configuration, sorted
	previous string   // the eligible member that owned it last, if any
}

// variant is one configuration members declare for a unit.
type variant struct {
	hash    string
	topics  []string
	members []string // sorted
}

func (v *variant) key() string { return v.hash + "\x00" + strings.Join(v.topics, "\x00") }

// planUnits picks each declared unit's reference configuration, eligible
// members and last owner, in name order, and describes the units whose
// members disagree.
func planUnits(members []groupMember) ([]*unitPlan, []string) {
	var names []string
	for _, m := range members {
		for name := range m.declared {
			names = append(names, name)
		}
	}
	names = sortedSet(names)
	var plans []*unitPlan
	var mismatches []string
	for _, name := range names {
		variants := variantsOf(name, members)
		claimants := claimantsOf(name, members)
		ref := referenceVariant(variants, claimants)
		plan := &unitPlan{name: name, topics: ref.topics, eligible: ref.members}
		for _, c := range claimants {
			if slices.Contains(ref.members, c) {
				plan.previous = c
				break
			}
		}
		plans = append(plans, plan)
		if len(variants) > 1 {
			mismatches = append(mismatches, describeMismatch(name, variants, ref))
		}
	}
	return plans, mismatches
}

// variantsOf returns the configurations members declare for unit name,
// sorted by key.
func variantsOf(name string, members []groupMember) []*variant {
	byKey := make(map[string]*variant)
	var variants []*variant
	for _, m := range members {
		u, ok := m.declared[name]
		if !ok {
			continue
		}
		v := &variant{hash: u.Hash, topics: u.Topics}
		if existing, ok := byKey[v.key()]; ok {
			v = existing
		} else {
			byKey[v.key()] = v
			variants = append(variants, v)
		}
		v.members = append(v.members, m.id)
	}
	slices.SortFunc(variants, func(x, y *variant) int { return strings.Compare(x.key(), y.key()) })
	return variants
}

// claimantsOf returns the members claiming unit name as last owned, most
// recent generation first, then by member ID.
func claimantsOf(name string, members []groupMember) []string {
	var claims []groupMember
	for _, m := range members {
		if m.owned[name] {
			claims = append(claims, m)
		}
	}
	slices.SortStableFunc(claims, func(x, y groupMember) int { return cmp.Compare(y.generation, x.generation) })
	ids := make([]string, len(claims))
	for i, m := range claims {
		ids[i] = m.id
	}
	return ids
}

// referenceVariant returns the variant most members declare; on a tie, the
// one of the unit's last owner, else the first by key.
func referenceVariant(variants []*variant, claimants []string) *variant {
	most := 0
	for _, v := range variants {
		most = max(most, len(v.members))
	}
	var tied []*variant
	for _, v := range variants {
		if len(v.members) == most {
			tied = append(tied, v)
		}
	}
	if len(claimants) > 0 {
		for _, v := range tied {
			if slices.Contains(v.members, claimants[0]) {
				return v
			}
		}
	}
	return tied[0]
}

func describeMismatch(name string, variants []*variant, ref *variant) string {
	parts := make([]string, 0, len(variants))
	for _, v := range variants {
		desc := fmt.Sprintf("members %s declare hash %q", strings.Join(v.members, ", "), v.hash)
		if !slices.Equal(v.topics, ref.topics) {
			desc += fmt.Sprintf(" with topics %v", v.topics)
		}
		if v == ref {
			desc += " (the reference)"
		}
		parts = append(parts, desc)
	}
	return fmt.Sprintf("unit %q: %s", name, strings.Join(parts, "; "))
}

// claimTopics gives each topic to the first unit by name that declares it,
// removing it from later units, and describes each such conflict.
func claimTopics(plans []*unitPlan) []string {
	unitOf := make(map[string]string)
	var conflicts []string
	for _, u := range plans {
		var kept []string
		for _, topic := range u.topics {
			if first, taken := unitOf[topic]; taken {
				conflicts = append(conflicts, fmt.Sprintf("topic %q is declared by units %q and %q; its partitions go with %q", topic, first, u.name, first))
				continue
			}
			unitOf[topic] = u.name
			kept = append(kept, topic)
		}
		u.topics = kept
	}
	return conflicts
}

// partitionsByTopic returns each topic's sorted partition IDs.
func partitionsByTopic(partitions []kafka.Partition) map[string][]int {
	byTopic := make(map[string][]int)
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	for topic, ids := range byTopic {
		slices.Sort(ids)
		byTopic[topic] = slices.Compact(ids)
	}
	return byTopic
}

// withPartitions returns the units with at least one partition, and the
// names of the others.
func withPartitions(plans []*unitPlan, byTopic map[string][]int) ([]*unitPlan, []string) {
	var kept []*unitPlan
	var skipped []string
	for _, u := range plans {
		if slices.ContainsFunc(u.topics, func(t string) bool { return len(byTopic[t]) > 0 }) {
			kept = append(kept, u)
		} else {
			skipped = append(skipped, u.name)
		}
	}
	return kept, skipped
}

// placement is who holds which unit while AssignGroups balances.
type placement struct {
	units []*unitPlan       // by name
	owner map[string]string // unit → member
	load  map[string]int    // member → units held, for every eligible member
}

// newPlacement leaves each unit with its last owner and gives the others,
// in name order, to their least-loaded eligible member.
func newPlacement(units []*unitPlan) *placement {
	p := &placement{units: units, owner: make(map[string]string), load: make(map[string]int)}
	for _, u := range units {
		for _, m := range u.eligible {
			if _, ok := p.load[m]; !ok {
				p.load[m] = 0 // eligible, so part of the balance
			}
		}
		if u.previous != "" {
			p.owner[u.name] = u.previous
			p.load[u.previous]++
		}
	}
	for _, u := range units {
		if u.previous != "" {
			continue
		}
		best := u.eligible[0]
		for _, m := range u.eligible[1:] {
			if p.load[m] < p.load[best] {
				best = m
			}
		}
		p.owner[u.name] = best
		p.load[best]++
	}
	return p
}

// balance moves units until no member holds two more than a member it can
// pass a unit to, directly or along a chain. Each move lowers the sum of
// squared loads, so it ends.
func (p *placement) balance() {
	for p.moveOne() {
	}
}

// moveOne makes one chain of moves (see chainFrom) from the most loaded
// member (ties: smallest ID) that has one, and reports whether there was
// one.
func (p *placement) moveOne() bool {
	members := make([]string, 0, len(p.load))
	for m := range p.load {
		members = append(members, m)
	}
	slices.SortFunc(members, func(x, y string) int {
		return cmp.Or(cmp.Compare(p.load[y], p.load[x]), strings.Compare(x, y))
	})
	for _, source := range members {
		if chain := p.chainFrom(source); chain != nil {
			for _, move := range chain {
				p.owner[move.unit.name] = move.to
			}
			p.load[source]--
			p.load[chain[len(chain)-1].to]++
			return true
		}
	}
	return false
}

// move passes unit to member to.
type move struct {
	unit *unitPlan
	to   string
}

// chainFrom finds the least-loaded member (ties: fewest moves, then
// smallest ID) holding at least two fewer units than source that source
// can pass a unit to, directly or along a chain of members, and returns the
// moves that do it, or nil.
func (p *placement) chainFrom(source string) []move {
	type hop struct {
		from  string
		unit  *unitPlan
		depth int
	}
	reached := map[string]hop{source: {}}
	frontier := []string{source}
	target := ""
	for depth := 1; len(frontier) > 0; depth++ {
		var next []string
		for _, from := range frontier {
			for _, u := range p.movable(from) {
				for _, to := range u.eligible {
					if _, seen := reached[to]; !seen {
						reached[to] = hop{from, u, depth}
						next = append(next, to)
					}
				}
			}
		}
		for _, m := range next {
			if p.load[m] <= p.load[source]-2 && (target == "" || p.load[m] < p.load[target] ||
				p.load[m] == p.load[target] && reached[m].depth == reached[target].depth && m < target) {
				target = m
			}
		}
		frontier = next
	}
	if target == "" {
		return nil
	}
	var chain []move
	for m := target; m != source; m = reached[m].from {
		chain = append(chain, move{reached[m].unit, m})
	}
	slices.Reverse(chain)
	return chain
}

// movable returns the units member holds, those that are not with their
// last owner first (moving them again costs no stickiness), then by name.
func (p *placement) movable(member string) []*unitPlan {
	var fresh, sticky []*unitPlan
	for _, u := range p.units {
		switch {
		case p.owner[u.name] != member:
		case u.previous == member:
			sticky = append(sticky, u)
		default:
			fresh = append(fresh, u)
		}
	}
	return append(fresh, sticky...)
}

// sortedSet returns the distinct values of s, sorted, in a new slice.
func sortedSet(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// missingTopics returns the topics that subscribed lacks.
func missingTopics(topics, subscribed []string) []string {
	var missing []string
	for _, t := range topics {
		if !slices.Contains(subscribed, t) {
			missing = append(missing, t)
		}
	}
	return missing
}
