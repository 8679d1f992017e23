package state

import (
	"strconv"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
)

// The notices' tables. A notice is one row, whatever its number of hashes: the hashes stay inside
// its signed envelope and in the match index, never one row each (a memdb row costs ≈9 µs and
// hundreds of bytes).
const (
	tableNotices    = "notices"
	tableStatements = "statements"

	// The list indexes key each notice by a filter value; memdb appends the primary key (the
	// notice id) to the keys of a non-unique index, so a scan of one filter value comes in
	// notice_id order, which is what ListNotices pages by.
	indexIssuer       = "issuer"
	indexAdoption     = "adoption" // jurisdiction, status
	indexCategory     = "category"
	indexNoticeState  = "state"
	indexStatementsOf = "notice"
)

// noticeTables are the tables whose last change is the notices index.
var noticeTables = []string{tableNotices, tableStatements, tableEvents}

func noticesTableSchema() *memdb.TableSchema {
	id := func(r *concordv1.NoticeRecord) string { return r.GetNotice().GetNoticeId() }
	return &memdb.TableSchema{
		Name: tableNotices,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*concordv1.NoticeRecord]{field: id},
			},
			indexIssuer: {
				Name: indexIssuer,
				Indexer: keysIndexer[*concordv1.NoticeRecord]{keys: func(r *concordv1.NoticeRecord) []string {
					return []string{r.GetNotice().GetIssuer()}
				}},
			},
			indexAdoption: {
				Name:         indexAdoption,
				AllowMissing: true,
				Indexer: keysIndexer[*concordv1.NoticeRecord]{keys: func(r *concordv1.NoticeRecord) []string {
					keys := make([]string, 0, len(r.GetJurisdictions()))
					for _, j := range r.GetJurisdictions() {
						keys = append(keys, adoptionKey(j.GetJurisdiction(), j.GetStatus()))
					}
					return keys
				}},
			},
			indexCategory: {
				Name: indexCategory,
				Indexer: keysIndexer[*concordv1.NoticeRecord]{keys: func(r *concordv1.NoticeRecord) []string {
					keys := make([]string, 0, len(r.GetNotice().GetCategories()))
					for _, c := range r.GetNotice().GetCategories() {
						keys = append(keys, strconv.Itoa(int(c)))
					}
					return keys
				}},
			},
			indexNoticeState: {
				Name: indexNoticeState,
				Indexer: keysIndexer[*concordv1.NoticeRecord]{keys: func(r *concordv1.NoticeRecord) []string {
					return []string{strconv.Itoa(int(r.GetState()))}
				}},
			},
		},
	}
}

func statementsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableStatements,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*statev1.AppliedStatement]{field: (*statev1.AppliedStatement).GetStatementId},
			},
			indexStatementsOf: {
				Name: indexStatementsOf,
				Indexer: keysIndexer[*statev1.AppliedStatement]{keys: func(s *statev1.AppliedStatement) []string {
					return []string{s.GetNoticeId()}
				}},
			},
		},
	}
}

// adoptionKey is the adoption index's key of a jurisdiction and status.
func adoptionKey(jurisdiction string, status concordv1.AdoptionStatus) string {
	return compoundKey(jurisdiction, strconv.Itoa(int(status)))
}
