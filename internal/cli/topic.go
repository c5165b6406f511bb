package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var topicCreateCmd = command{
	name:    "topic create",
	args:    " NAME",
	summary: "create a topic",
	npos:    1,
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		partitions := fs.Int("partitions", 1, "number of `partitions` (-1: the broker's num.partitions)")
		rf := fs.Int("replication-factor", 1, "replication `factor` (-1: the broker's default.replication.factor)")
		var configs listFlag
		fs.Var(&configs, "config", "topic config `key=value`, repeatable (e.g. cleanup.policy=compact)")
		return func(e *env, c *connFlags, pos []string) error {
			name := pos[0]
			if *partitions == 0 || *partitions < -1 || *partitions > 1<<31-1 {
				return usagef("--partitions %d: want a positive count or -1", *partitions)
			}
			if *rf == 0 || *rf < -1 || *rf > 1<<15-1 {
				return usagef("--replication-factor %d: want a positive count or -1", *rf)
			}
			cfg := make(map[string]*string)
			for _, kv := range configs {
				k, v, err := splitKV("config", kv)
				if err != nil {
					return err
				}
				cfg[k] = &v
			}
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			resp, err := adm.CreateTopic(e.ctx, int32(*partitions), int16(*rf), cfg, name)
			if err != nil {
				return topicErr(name, err, resp.ErrMessage)
			}
			fmt.Fprintf(e.stdout, "created topic %q with %d partitions\n", name, resp.NumPartitions)
			return nil
		}
	},
}

var topicListCmd = command{
	name:    "topic list",
	summary: "list topics, one name a line",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		internal := fs.Bool("internal", false, "include internal topics (__consumer_offsets, __transaction_state)")
		return func(e *env, c *connFlags, _ []string) error {
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			list := adm.ListTopics
			if *internal {
				list = adm.ListTopicsWithInternal
			}
			details, err := list(e.ctx)
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			for _, name := range details.Names() {
				fmt.Fprintln(e.stdout, name)
			}
			return nil
		}
	},
}

var topicDescribeCmd = command{
	name:    "topic describe",
	args:    " NAME",
	summary: "show a topic's partitions, leaders, offsets and configs",
	npos:    1,
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		return func(e *env, c *connFlags, pos []string) error {
			name := pos[0]
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			details, err := adm.ListTopics(e.ctx, name)
			if err != nil {
				return fmt.Errorf("metadata for topic %q: %w", name, err)
			}
			d, ok := details[name]
			if !ok {
				return topicErr(name, errNoTopic, "")
			}
			if d.Err != nil {
				return topicErr(name, d.Err, "")
			}
			starts, err := adm.ListStartOffsets(e.ctx, name)
			if err != nil {
				return fmt.Errorf("start offsets of topic %q: %w", name, err)
			}
			ends, err := adm.ListEndOffsets(e.ctx, name)
			if err != nil {
				return fmt.Errorf("end offsets of topic %q: %w", name, err)
			}
			rcs, err := adm.DescribeTopicConfigs(e.ctx, name)
			if err != nil {
				return fmt.Errorf("configs of topic %q: %w", name, err)
			}
			rc, err := rcs.On(name, nil)
			if err == nil {
				err = rc.Err
			}
			if err != nil {
				return topicErr(name, err, rc.ErrMessage)
			}
			printTopic(e, d, starts, ends, rc)
			return nil
		}
	},
}

var errNoTopic = fmt.Errorf("not in metadata")

func printTopic(e *env, d kadm.TopicDetail, starts, ends kadm.ListedOffsets, rc kadm.ResourceConfig) {
	fmt.Fprintf(e.stdout, "topic: %s\n", d.Topic)
	if d.ID != (kadm.TopicID{}) {
		fmt.Fprintf(e.stdout, "id: %s\n", d.ID)
	}
	fmt.Fprintf(e.stdout, "partitions: %d\n", len(d.Partitions))
	fmt.Fprintf(e.stdout, "replication factor: %d\n", d.Partitions.NumReplicas())
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tSTART\tEND\tERROR")
	offset := func(lo kadm.ListedOffsets, p int32) string {
		o, ok := lo.Lookup(d.Topic, p)
		switch {
		case !ok:
			return "-"
		case o.Err != nil:
			return "?"
		}
		return fmt.Sprint(o.Offset)
	}
	for _, p := range d.Partitions.Sorted() {
		errText := ""
		if p.Err != nil {
			errText = p.Err.Error()
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
			ints(p.Replicas), ints(p.ISR), offset(starts, p.Partition), offset(ends, p.Partition), errText)
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "configs:")
	cfgs := slices.Clone(rc.Configs)
	slices.SortFunc(cfgs, func(a, b kadm.Config) int { return strings.Compare(a.Key, b.Key) })
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, cfg := range cfgs {
		v := cfg.MaybeValue()
		if cfg.Sensitive {
			v = "(sensitive)"
		}
		fmt.Fprintf(tw, "  %s=%s\t%s\n", cfg.Key, v, configSource(cfg.Source))
	}
	tw.Flush()
}

func configSource(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "(set on topic)"
	case kmsg.ConfigSourceDefaultConfig:
		return "(default)"
	case kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceDynamicBrokerConfig, kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "(broker)"
	}
	return ""
}

func ints(v []int32) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

var topicDeleteCmd = command{
	name:    "topic delete",
	args:    " NAME",
	summary: "delete a topic and its data",
	npos:    1,
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		return func(e *env, c *connFlags, pos []string) error {
			name := pos[0]
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			resp, err := adm.DeleteTopic(e.ctx, name)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				return topicErr(name, err, resp.ErrMessage)
			}
			fmt.Fprintf(e.stdout, "deleted topic %q\n", name)
			return nil
		}
	},
}

var topicAlterConfigCmd = command{
	name:    "topic alter-config",
	args:    " NAME",
	summary: "set or delete topic configs (incrementally: others are kept)",
	npos:    1,
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		var sets, dels listFlag
		fs.Var(&sets, "set", "set config `key=value`, repeatable")
		fs.Var(&dels, "delete", "delete config `key` (back to its default), repeatable")
		return func(e *env, c *connFlags, pos []string) error {
			name := pos[0]
			if len(sets)+len(dels) == 0 {
				return usagef("nothing to do: give --set key=value or --delete key")
			}
			var alters []kadm.AlterConfig
			for _, kv := range sets {
				k, v, err := splitKV("set", kv)
				if err != nil {
					return err
				}
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
			for _, k := range dels {
				if k == "" || strings.Contains(k, "=") {
					return usagef("--delete %q: want a config key", k)
				}
				alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
			}
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			// Kafka answers an alter on a missing topic with a bare
			// UNKNOWN_TOPIC_OR_PARTITION; look first for a clear message.
			if _, err := requireTopic(e.ctx, adm, name); err != nil {
				return err
			}
			resps, err := adm.AlterTopicConfigs(e.ctx, alters, name)
			if err != nil {
				return fmt.Errorf("alter configs of topic %q: %w", name, err)
			}
			for _, r := range resps {
				if r.Err != nil {
					return topicErr(name, r.Err, r.ErrMessage)
				}
			}
			fmt.Fprintf(e.stdout, "altered %d configs of topic %q\n", len(alters), name)
			return nil
		}
	},
}
