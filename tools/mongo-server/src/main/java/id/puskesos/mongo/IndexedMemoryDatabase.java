package id.puskesos.mongo;

import java.util.ArrayList;
import java.util.List;

import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.DatabaseResolver;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.IndexedAggregation;
import de.bwaldvogel.mongo.backend.SecondaryIndex;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * A memory database whose collections build their secondary indexes and use them in aggregations,
 * and whose write replies count as MongoDB's do (see tests/storage and docs/storage-conformance.md).
 */
public class IndexedMemoryDatabase extends MemoryDatabase {

    public IndexedMemoryDatabase(String databaseName, CursorRegistry cursorRegistry) {
        super(databaseName, cursorRegistry);
    }

    @Override
    protected MemoryCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
        return new IndexedMemoryCollection(this, collectionName, options, cursorRegistry);
    }

    @Override
    protected Index<Integer> openOrCreateSecondaryIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                        boolean sparse) {
        return new SecondaryIndex<>(indexName, keys, sparse);
    }

    @Override
    public Document handleCommand(Channel channel, String command, Document query, DatabaseResolver databaseResolver,
                                  Oplog oplog) {
        if (command.equalsIgnoreCase("aggregate")) {
            Document counted = IndexedAggregation.count(this, query);
            if (counted != null) {
                return counted;
            }
            return IndexedMemoryCollection.readingCopies(() -> {
                Document response = IndexedAggregation.run(this, query, databaseResolver, oplog);
                return response != null ? response : super.handleCommand(channel, command, query, databaseResolver, oplog);
            });
        }
        if (command.equalsIgnoreCase("find")) {
            return IndexedMemoryCollection.readingCopies(
                () -> super.handleCommand(channel, command, query, databaseResolver, oplog));
        }
        if (command.equalsIgnoreCase("insert")) {
            return countInserted(query, super.handleCommand(channel, command, query, databaseResolver, oplog));
        }
        if (command.equalsIgnoreCase("update") && Utils.isTrue(query.get("ordered"))
            && query.get("updates") instanceof List<?> updates && updates.size() > 1) {
            return orderedUpdates(channel, command, query, databaseResolver, oplog);
        }
        return super.handleCommand(channel, command, query, databaseResolver, oplog);
    }

    /**
     * mongo-java-server answers {@code n} = the documents sent, failed ones included; MongoDB counts the
     * documents inserted (an ordered insert stops at its first error, an unordered one skips failures).
     */
    private static Document countInserted(Document query, Document response) {
        if (!(response.get("writeErrors") instanceof List<?> errors) || errors.isEmpty()) {
            return response;
        }
        int sent = ((List<?>) query.get("documents")).size();
        int inserted = Utils.isTrue(query.get("ordered"))
            ? ((Number) ((Document) errors.get(0)).get("index")).intValue()
            : sent - errors.size();
        response.put("n", inserted);
        return response;
    }

    /**
     * mongo-java-server applies every update of an ordered batch even after one fails; MongoDB stops at
     * the first error. Runs the batch one update at a time, stopping there, and merges the replies.
     */
    private Document orderedUpdates(Channel channel, String command, Document query, DatabaseResolver resolver,
                                    Oplog oplog) {
        List<?> updates = (List<?>) query.get("updates");
        int n = 0;
        int modified = 0;
        List<Document> upserted = new ArrayList<>();
        List<Document> writeErrors = new ArrayList<>();
        for (int i = 0; i < updates.size() && writeErrors.isEmpty(); i++) {
            Document single = new Document(query);
            single.put("updates", List.of(updates.get(i)));
            Document reply = super.handleCommand(channel, command, single, resolver, oplog);
            n += ((Number) reply.getOrDefault("n", 0)).intValue();
            modified += ((Number) reply.getOrDefault("nModified", 0)).intValue();
            for (String field : List.of("upserted", "writeErrors")) {
                if (reply.get(field) instanceof List<?> entries) {
                    for (Object entry : entries) {
                        Document renumbered = new Document((Document) entry);
                        renumbered.put("index", i);
                        (field.equals("upserted") ? upserted : writeErrors).add(renumbered);
                    }
                }
            }
        }
        Document response = new Document("n", n);
        response.put("nModified", modified);
        if (!upserted.isEmpty()) {
            response.put("upserted", upserted);
        }
        if (!writeErrors.isEmpty()) {
            response.put("writeErrors", writeErrors);
        }
        Utils.markOkay(response);
        return response;
    }
}
