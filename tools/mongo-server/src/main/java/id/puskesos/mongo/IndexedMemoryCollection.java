package id.puskesos.mongo;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.SecondaryIndex;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.bson.Document;

/** A memory collection that picks the narrowest index for a query (mongo-java-server takes the first). */
public class IndexedMemoryCollection extends MemoryCollection {

    private static final int UNIQUE_MATCH = Integer.MAX_VALUE;

    public IndexedMemoryCollection(MongoDatabase database, String collectionName, CollectionOptions options,
                                   CursorRegistry cursorRegistry) {
        super(database, collectionName, options, cursorRegistry);
    }

    @Override
    protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                         int batchSize, Document fieldSelector) {
        Index<Integer> best = null;
        int bestScore = 0;
        for (Index<Integer> index : getIndexes()) {
            int score;
            if (index instanceof SecondaryIndex<Integer> secondary) {
                score = secondary.score(query);
            } else {
                score = index.canHandle(query) ? UNIQUE_MATCH : 0;
            }
            if (score > bestScore) {
                best = index;
                bestScore = score;
            }
        }
        if (best == null) {
            return matchDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }
        return matchDocuments(query, best.getPositions(query), orderBy, numberToSkip, limit, batchSize, fieldSelector);
    }
}
