package state

import "github.com/hashicorp/go-memdb"

const (
	// indexID is the primary index every memdb table must have.
	indexID = "id"
	// indexIDPrefix scans the primary index by prefix: memdb calls PrefixFromArgs for an index
	// name ending in "_prefix", and the prefix "" lists the whole table in key order.
	indexIDPrefix = indexID + "_prefix"
)

// schema gathers the tables of every domain. Each domain declares its tables beside its queries
// (registry_schema.go, ...); add a new domain's tables here.
func schema() *memdb.DBSchema {
	db := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, fn := range []func() *memdb.TableSchema{
		indexTableSchema,
		partnersTableSchema,
		signingKeysTableSchema,
		jurisdictionsTableSchema,
		registryChangesTableSchema,
		noticesTableSchema,
		statementsTableSchema,
		logTableSchema,
		clockTableSchema,
		eventsTableSchema,
		actionsTableSchema,
	} {
		t := fn()
		if _, dup := db.Tables[t.Name]; dup {
			panic("state: table " + t.Name + " declared twice")
		}
		db.Tables[t.Name] = t
	}
	return db
}
