package de.bwaldvogel.mongo.backend;

import java.util.List;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * Runs an aggregation whose first stage is a {@code $match} on the documents the collection's query
 * path selects (so its indexes serve the match), instead of on every document as mongo-java-server
 * does; and answers PyMongo's {@code count_documents} pipeline ({@code $match}, {@code $group}) by counting.
 *
 * <p>In mongo-java-server's package for its package-private cursor-response helper.
 */
public final class IndexedAggregation {

    /** PyMongo's count_documents: {@code $match}, then {@code $skip} and {@code $limit} if given, then this. */
    private static final Document COUNT_GROUP = new Document("$group",
        new Document("_id", 1).append("n", new Document("$sum", 1)));

    private IndexedAggregation() {
    }

    /**
     * Answers PyMongo's count_documents pipeline by counting what the query path selects, without
     * running the stages over the documents (or copying them: nothing reads their content). {@code null}
     * when the pipeline has another shape.
     */
    public static Document count(AbstractMongoDatabase<?> database, Document query) {
        if (!(query.get("aggregate") instanceof String collectionName)) {
            return null;
        }
        List<Document> pipeline = Aggregation.parse(query.get("pipeline"));
        int last = pipeline.size() - 1;
        if (last < 1 || !pipeline.get(last).equals(COUNT_GROUP) || pipeline.get(0).size() != 1
            || !(pipeline.get(0).get("$match") instanceof Document match)) {
            return null;
        }
        long skip = 0;
        long limit = Long.MAX_VALUE;
        int next = 1;
        if (next < last && pipeline.get(next).size() == 1 && pipeline.get(next).get("$skip") instanceof Number n) {
            skip = n.longValue();
            next++;
        }
        if (next < last && pipeline.get(next).size() == 1 && pipeline.get(next).get("$limit") instanceof Number n) {
            limit = n.longValue();
            next++;
        }
        if (next != last || skip < 0 || limit <= 0) {
            return null; // another shape, or arguments MongoDB refuses: the stock path answers
        }
        MongoCollection<?> collection = database.resolveCollection(collectionName, false);
        long matched = 0;
        if (collection != null) {
            for (Document ignored : collection.handleQuery(match)) {
                matched++;
            }
        }
        long n = Math.min(Math.max(matched - skip, 0), limit);
        List<Document> result = n == 0 ? List.of() : List.of(new Document("_id", 1).append("n", Math.toIntExact(n)));
        return Utils.firstBatchCursorResponse(database.getFullCollectionNamespace(collectionName), result);
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
