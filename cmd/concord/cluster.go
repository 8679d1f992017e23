package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/datadir"
	"concord/server/fsm"
	"concord/server/raftnode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	register(command{name: "cluster", summary: "show and change the members of a cluster (cluster list|join|remove)", run: runCluster})
}

func runCluster(ctx context.Context, args []string) error {
	return runGroup(ctx, "cluster", `
A Concord cluster is three or five nodes that keep one raft log: any node takes writes (a
follower forwards them to the leader) and reads. These commands, for the hub's administrators
(ADMIN), show each member's role, last contact with the leader and applied index, and change the
membership. Any node answers; 'list' works without a leader too.`, `
concord cluster list --as hub-ops --addr 10.0.0.1:7443
concord cluster join node-4 10.0.0.4:7000 --as hub-ops
concord cluster remove node-2 --as hub-ops
concord cluster recover --data-dir /var/lib/concord --node-id node-1 --raft-addr 10.0.0.1:7000`,
		[]subcommand{
			{"list", "list the members with their role, last contact and applied index", runClusterList},
			{"join", "add a node as a voter (or change a member's raft address)", runClusterJoin},
			{"remove", "remove a node from the cluster", runClusterRemove},
			{"recover", "make a stopped node the only member of its cluster (after losing a majority)", runClusterRecover},
		}, args)
}

func runClusterList(ctx context.Context, args []string) error {
	fs := newFlags("cluster list", "cluster list [flags]", `
Lists the members of the cluster as the node at --addr knows them, each with what it reports
itself: its role (LEADER, FOLLOWER, CANDIDATE; UNREACHABLE when it does not answer within a
second), how long ago it last heard from the leader, the raft index its state has applied, when
it last compared its transparency log with the other voters', and its alarms: HALTED (its state
machine met an entry it cannot apply), CORRUPT (a data file failed verification), FORKED (its
log disagrees with the majority's) stop it from serving and signing; NO_SPACE stops its writes.
It exits with status 5 when a member has an alarm. --wait N first waits (up to --wait-timeout)
until N members answer as leader or follower: for scripts that start a cluster.`, `
concord cluster list --as hub-ops
concord cluster list --as hub-ops --wait 3
concord cluster list --addr 10.0.0.2:7443 --ca ca.pem --cert admin.pem --key admin.key --json`)
	var cf clientFlags
	cf.register(fs)
	wait := fs.Int("wait", 0, "first wait until this many members answer as leader or follower")
	waitTimeout := fs.Duration("wait-timeout", time.Minute, "how long --wait waits")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(*waitTimeout)
	var resp *concordv1.ListMembersResponse
	for {
		resp, err = c.Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
		if err == nil && serving(resp) >= *wait {
			break
		}
		if err != nil && (*wait == 0 || status.Code(err) != codes.Unavailable) {
			return callError("list members", err) // only a node not up yet is waited for
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return callError("list members", err)
			}
			return fmt.Errorf("--wait %d: %d members answer as leader or follower after %v", *wait, serving(resp), *waitTimeout)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if cf.json {
		return printJSON(os.Stdout, resp)
	}
	printMembers(os.Stdout, resp.GetMembers())
	if resp.GetLeaderId() == "" {
		fmt.Fprintf(os.Stdout, "\nNo leader: %s knows of none. With fewer than a majority of the voters up, the cluster cannot elect one (see the README, 'When nodes are lost').\n", resp.GetNodeId())
	}
	for _, m := range resp.GetMembers() {
		if len(m.GetAlarms()) > 0 {
			return errAlarm
		}
	}
	return nil
}

// errAlarm: a member reported an alarm (exit status 5).
var errAlarm = errors.New("a member has raised an alarm")

// serving counts the members that answer as leader or follower.
func serving(resp *concordv1.ListMembersResponse) int {
	n := 0
	for _, m := range resp.GetMembers() {
		if r := m.GetRole(); r == concordv1.MemberRole_MEMBER_ROLE_LEADER || r == concordv1.MemberRole_MEMBER_ROLE_FOLLOWER {
			n++
		}
	}
	return n
}

// printMembers prints members as a table.
func printMembers(w io.Writer, members []*concordv1.Member) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tVOTER\tRAFT ADDRESS\tLAST CONTACT\tAPPLIED\tCOMMIT\tTERM\tLOG CHECKED\tALARMS\tVERSION")
	for _, m := range members {
		contact := "-"
		if lc := m.GetLastContact(); lc != nil {
			contact = lc.AsDuration().Round(time.Millisecond).String()
		}
		checked := "-"
		if at := m.GetLogCheckedAt(); at != nil {
			checked = time.Since(at.AsTime()).Round(time.Second).String() + " ago"
		}
		alarms := "-"
		if len(m.GetAlarms()) > 0 {
			var kinds []string
			for _, a := range m.GetAlarms() {
				kinds = append(kinds, strings.TrimPrefix(a.GetKind().String(), "ALARM_KIND_"))
			}
			alarms = strings.Join(kinds, ",")
		}
		role := strings.TrimPrefix(m.GetRole().String(), "MEMBER_ROLE_")
		ver := m.GetVersion()
		if ver == "" {
			ver = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", m.GetNodeId(), role, m.GetVoter(), m.GetRaftAddress(), contact,
			m.GetAppliedIndex(), m.GetCommitIndex(), m.GetTerm(), checked, alarms, ver)
	}
	tw.Flush()
	for _, m := range members {
		if m.GetError() != "" {
			fmt.Fprintf(w, "%s: %s\n", m.GetNodeId(), m.GetError())
		}
		for _, a := range m.GetAlarms() {
			at := ""
			if a.GetRaftIndex() > 0 {
				at = fmt.Sprintf(" at raft index %d", a.GetRaftIndex())
			}
			fmt.Fprintf(w, "%s: %s%s since %s: %s\n", m.GetNodeId(), strings.TrimPrefix(a.GetKind().String(), "ALARM_KIND_"), at,
				a.GetSince().AsTime().UTC().Format(time.RFC3339), a.GetDetail())
		}
	}
}

func runClusterJoin(ctx context.Context, args []string) error {
	fs := newFlags("cluster join", "cluster join NODE-ID RAFT-ADDR [flags]", `
Adds node NODE-ID, whose raft port is RAFT-ADDR, to the cluster as a voter, or records a new
raft address for a member. The node must be running ('concord serve --node-id NODE-ID
--raft-addr RAFT-ADDR ...' with an empty data directory, or a former member's): it then catches
up from the leader. 'concord serve --join' does the same from the new node's side.`, `
concord cluster join node-4 10.0.0.4:7000 --as hub-ops`)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("want NODE-ID and RAFT-ADDR (run 'concord cluster join --help')")
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Cluster.AddMember(ctx, &concordv1.AddMemberRequest{NodeId: pos[0], RaftAddress: pos[1]})
	if err != nil {
		return callError("add member", err)
	}
	if cf.json {
		return printJSON(os.Stdout, resp)
	}
	fmt.Fprintf(os.Stdout, "%s is a member.\n\n", pos[0])
	printMembers(os.Stdout, resp.GetMembers())
	return nil
}

func runClusterRemove(ctx context.Context, args []string) error {
	fs := newFlags("cluster remove", "cluster remove NODE-ID [flags]", `
Removes node NODE-ID from the cluster: a node lost for good (so that the quorum counts only the
nodes that are left), or one being retired. A removed node that still runs takes no part in the
cluster any more and stops serving; stop it, or add it back with 'concord cluster join'. The
last member cannot be removed.`, `
concord cluster remove node-3 --as hub-ops`)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want NODE-ID (run 'concord cluster remove --help')")
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Cluster.RemoveMember(ctx, &concordv1.RemoveMemberRequest{NodeId: pos[0]})
	if err != nil {
		return callError("remove member", err)
	}
	if cf.json {
		return printJSON(os.Stdout, resp)
	}
	fmt.Fprintf(os.Stdout, "%s is no longer a member.\n\n", pos[0])
	printMembers(os.Stdout, resp.GetMembers())
	return nil
}

// parseWithArgs parses flags given before, between or after the positional arguments, and
// returns the positional ones.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func runClusterRecover(ctx context.Context, args []string) error {
	fs := newFlags("cluster recover", "cluster recover --data-dir DIR --node-id ID --raft-addr ADDR", `
For a cluster that lost a majority of its voters for good (two of three, three of five): run it,
offline, on the data directory of the most up-to-date survivor (the highest applied index in
'concord cluster list'), with that node stopped. It rewrites the raft configuration there so that
the node is the only voter, keeping every entry of its log; entries it had received but did not
yet know to be committed become committed. Start the node again: it elects itself and serves.
Then start new nodes with empty data directories and --join, and 'concord cluster remove'
nothing: the lost members are no longer in the configuration. Other survivors must not be
started on their old data: wipe it and let them join.`, `
concord cluster recover --data-dir /var/lib/concord --node-id node-1 --raft-addr 10.0.0.1:7000`)
	dataDir := fs.String("data-dir", "", "the stopped node's data directory")
	nodeID := fs.String("node-id", "", "the node's id (its node certificate's)")
	raftAddr := fs.String("raft-addr", "", "the node's raft address (empty: a node that will run alone)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || *nodeID == "" {
		return fmt.Errorf("want --data-dir and --node-id (run 'concord cluster recover --help')")
	}
	if _, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	lock, err := datadir.Acquire(*dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	f, err := fsm.New(nil)
	if err != nil {
		return err
	}
	if err := raftnode.Recover(*dataDir, *nodeID, *raftAddr, f); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "recovered %s: %s is now the only voter of its cluster, with raft index %d applied.\n", *dataDir, *nodeID, f.Applied())
	fmt.Fprintf(os.Stdout, "Start it (same --node-id and --raft-addr), then join new nodes to it with empty data directories.\n")
	return nil
}
