package state

import (
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
)

// The registry's tables. Partners are stored without their signing keys, which live in their own
// table so that adding or revoking a key does not rewrite the partner.
const (
	tablePartners        = "partners"
	tableSigningKeys     = "signing_keys"
	tableJurisdictions   = "jurisdictions"
	tableRegistryChanges = "registry_changes"

	indexPartner = "partner"
)

// registryTables are the tables whose last change is the registry index.
var registryTables = []string{tablePartners, tableSigningKeys, tableJurisdictions, tableRegistryChanges}

func partnersTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tablePartners,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*concordv1.Partner]{field: (*concordv1.Partner).GetId},
			},
		},
	}
}

func signingKeysTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSigningKeys,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*concordv1.SigningKey]{field: (*concordv1.SigningKey).GetKeyId},
			},
			indexPartner: {
				Name:    indexPartner,
				Indexer: stringIndexer[*concordv1.SigningKey]{field: (*concordv1.SigningKey).GetPartnerId},
			},
		},
	}
}

func jurisdictionsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableJurisdictions,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*concordv1.Jurisdiction]{field: (*concordv1.Jurisdiction).GetCode},
			},
		},
	}
}

func registryChangesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableRegistryChanges,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*statev1.AppliedChange]{field: (*statev1.AppliedChange).GetChangeId},
			},
		},
	}
}
