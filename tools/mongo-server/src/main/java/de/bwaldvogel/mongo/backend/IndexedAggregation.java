package de.bwaldvogel.mongo.backend;

import java.util.List;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * Runs an aggregation whose first stage is a {@code $match} on the documents the collection's query
 * path selects (so its indexes serve the match), instead of on every document as mongo-java-server
 * does. PyMongo's {@code count_documents} is such a pipeline ({@code $match}, {@code $group}).
 *
 * <p>In mongo-java-server's package for its package-private cursor-response helper.
 */
public final class IndexedAggregation {

    private IndexedAggregation() {
    }

    /** The command's response, or {@code null} when the pipeline is not one this path serves. */
    public static Document run(AbstractMongoDatabase<?> database, Document query, DatabaseResolver resolver,
                               Oplog oplog) {
        if (!(query.get("aggregate") instanceof String collectionName)) {
            return null;
        }
        List<Document> pipeline = Aggregation.parse(query.get("pipeline"));
        if (pipeline.isEmpty() || pipeline.get(0).size() != 1
            || !(pipeline.get(0).get("$match") instanceof Document match)) {
            return null;
        }
        MongoCollection<?> collection = database.resolveCollection(collectionName, false);
        if (collection == null) {
            return null;
        }
        Aggregation aggregation = Aggregation.fromPipeline(pipeline, resolver, database, collection, oplog);
        aggregation.validate(query);
        if (aggregation.isModifying()) {
            return null;
        }
        List<Document> result = aggregation.runStages(collection.handleQueryAsStream(match));
        return Utils.firstBatchCursorResponse(database.getFullCollectionNamespace(collectionName), result);
    }
}
