package id.puskesos.mongo;

import java.util.ArrayList;
import java.util.List;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.SecondaryIndex;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A memory collection that picks the narrowest index for a query (mongo-java-server takes the first)
 * and hands out copies of its documents, so a reader never sees half of a concurrent update.
 *
 * <p>mongo-java-server updates stored documents in place and returns the stored objects themselves
 * from queries and findAndModify; the reply is encoded after the collection's lock is released, so a
 * concurrent update can show through (a find returning {@code a != b} after {@code $inc: {a: 1, b: 1}},
 * two findAndModify {@code $inc} returning the same new value). Copies are made under the lock: for
 * findAndModify always, for queries only while a read command runs on this thread ({@link #readingCopies}),
 * because updates and deletes run the same query path and must get the stored documents.
 */
public class IndexedMemoryCollection extends MemoryCollection {

    private static final int UNIQUE_MATCH = Integer.MAX_VALUE;
    private static final ThreadLocal<Boolean> COPY_RESULTS = ThreadLocal.withInitial(() -> Boolean.FALSE);

    public IndexedMemoryCollection(MongoDatabase database, String collectionName, CollectionOptions options,
                                   CursorRegistry cursorRegistry) {
        super(database, collectionName, options, cursorRegistry);
    }

    /** Runs a read command (find, aggregate) whose query results are copied under the collection's lock. */
    static <T> T readingCopies(java.util.function.Supplier<T> command) {
        COPY_RESULTS.set(Boolean.TRUE);
        try {
            return command.get();
        } finally {
            COPY_RESULTS.set(Boolean.FALSE);
        }
    }

    @Override
    protected QueryResult createQueryResult(List<Document> matchedDocuments, int batchSize) {
        if (!COPY_RESULTS.get()) {
            return super.createQueryResult(matchedDocuments, batchSize);
        }
        List<Document> copies = new ArrayList<>(matchedDocuments.size());
        for (Document document : matchedDocuments) {
            copies.add(document.cloneDeeply());
        }
        return super.createQueryResult(copies, batchSize);
    }

    @Override
    public synchronized Document findAndModify(Document query) {
        Document result = super.findAndModify(query);
        if (result.get("value") instanceof Document value) {
            result.put("value", value.cloneDeeply());
        }
        return result;
    }

    @Override
    protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                         int batchSize, Document fieldSelector) {
        Index<Integer> best = null;
        Document bestLookup = query;
        int bestScore = 0;
        for (Index<Integer> index : getIndexes()) {
            int score;
            Document lookup = query;
            if (index instanceof SecondaryIndex<Integer> secondary) {
                score = secondary.score(query);
            } else if (index.canHandle(query)) {
                score = UNIQUE_MATCH;
            } else {
                // A unique index also serves a query that adds conditions to its keys ({_id, version: {$lt: v}}):
                // it narrows the candidates to its keys' match, and every candidate is then checked against the
                // whole query. mongo-java-server uses a unique index only when the query has exactly its keys.
                lookup = uniqueKeysOf(index, query);
                score = lookup != null && index.canHandle(lookup) ? UNIQUE_MATCH - 1 : 0;
            }
            if (score > bestScore) {
                best = index;
                bestLookup = lookup;
                bestScore = score;
            }
        }
        if (best == null) {
            return matchDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }
        return matchDocuments(query, best.getPositions(bestLookup), orderBy, numberToSkip, limit, batchSize,
            fieldSelector);
    }

    /** The part of {@code query} on the index's keys, when the query names every one of them; else null. */
    private static Document uniqueKeysOf(Index<Integer> index, Document query) {
        Document lookup = new Document();
        for (IndexKey key : index.getKeys()) {
            if (!query.containsKey(key.getKey())) {
                return null;
            }
            lookup.put(key.getKey(), query.get(key.getKey()));
        }
        return lookup;
    }
}
