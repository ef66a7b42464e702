package de.bwaldvogel.mongo.backend;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.bson.BsonRegularExpression;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A non-unique (secondary) index, which mongo-java-server accepts but does not build.
 *
 * <p>Keys are kept in a sorted map, so a query is served when it gives an equality (or {@code $in})
 * on a prefix of the index keys, optionally followed by a range ({@code $gt/$gte/$lt/$lte}) on the
 * next key: {@code {village_code: v}} or {@code {status: "open", due_at: {$lt: t}}} on an index
 * {@code (status, due_at)}; a sparse index also serves {@code {key: {$exists: true}}} (the outbox
 * sweep). The positions it returns are candidates: the collection still applies the
 * whole query to each document, so the index only has to return a superset of the matches. Sorts do
 * not use it (the candidates are sorted in memory).
 *
 * <p>It lives in mongo-java-server's package because the value normalisation it must share with the
 * unique indexes ({@link Utils#normalizeValue}) is package-private there.
 */
public class SecondaryIndex<P extends Comparable<P>> extends Index<P> {

    private static final int MAX_EQUALITY_COMBINATIONS = 10_000;
    private static final Set<String> RANGE_OPERATORS = Set.of("$gt", "$gte", "$lt", "$lte");

    private final NavigableMap<List<Object>, Set<P>> entries = new TreeMap<>(SecondaryIndex::compareKeys);
    private final Map<Object, P> positionsById = new HashMap<>();

    public SecondaryIndex(String name, List<IndexKey> keys, boolean sparse) {
        super(name, keys, sparse);
    }

    /** Keys compare component by component in BSON order; a prefix sorts before its extensions. */
    static int compareKeys(List<Object> a, List<Object> b) {
        int common = Math.min(a.size(), b.size());
        for (int i = 0; i < common; i++) {
            int c = ValueComparator.asc().compare(a.get(i), b.get(i));
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(a.size(), b.size());
    }

    private static Object idOf(Document document) {
        return Utils.normalizeValue(document.get("_id"));
    }

    private boolean skipped(Document document) {
        return isSparse() && keys().stream().noneMatch(key -> Utils.hasSubdocumentValue(document, key));
    }

    private static List<Object> entryKey(KeyValue keyValue) {
        List<Object> key = new ArrayList<>(keyValue.size());
        for (Object value : keyValue) {
            key.add(Missing.isNullOrMissing(value) ? null : value);
        }
        return key;
    }

    private void put(Document document, P position) {
        if (skipped(document)) {
            return;
        }
        for (KeyValue keyValue : getKeyValues(document)) {
            entries.computeIfAbsent(entryKey(keyValue), k -> new TreeSet<>()).add(position);
        }
        positionsById.put(idOf(document), position);
    }

    private void delete(Document document, P position) {
        for (KeyValue keyValue : getKeyValues(document)) {
            List<Object> key = entryKey(keyValue);
            Set<P> positions = entries.get(key);
            if (positions != null) {
                positions.remove(position);
                if (positions.isEmpty()) {
                    entries.remove(key);
                }
            }
        }
    }

    @Override
    public synchronized P getPosition(Document document) {
        return positionsById.get(idOf(document));
    }

    @Override
    public void checkAdd(Document document, MongoCollection<P> collection) {
        getKeyValues(document); // refuses parallel arrays before the document is stored, as MongoDB does
    }

    @Override
    public synchronized void add(Document document, P position, MongoCollection<P> collection) {
        put(document, position);
    }

    @Override
    public synchronized P remove(Document document) {
        P position = positionsById.remove(idOf(document));
        if (position != null) {
            delete(document, position);
        }
        return position;
    }

    @Override
    public void checkUpdate(Document oldDocument, Document newDocument, MongoCollection<P> collection) {
        getKeyValues(newDocument);
    }

    @Override
    public synchronized void updateInPlace(Document oldDocument, Document newDocument, P position,
                                           MongoCollection<P> collection) {
        if (nullAwareEqualsKeys(oldDocument, newDocument) && skipped(oldDocument) == skipped(newDocument)) {
            return;
        }
        if (positionsById.remove(idOf(oldDocument)) != null) {
            delete(oldDocument, position);
        }
        put(newDocument, position);
    }

    @Override
    public synchronized long getCount() {
        return positionsById.size();
    }

    @Override
    public long getDataSize() {
        return getCount();
    }

    @Override
    public synchronized void drop() {
        entries.clear();
        positionsById.clear();
    }

    // -- serving queries ---------------------------------------------------------------------------

    /** What a query asks of this index: equality values for a prefix of its keys, then maybe a range. */
    private record Plan(List<List<Object>> prefixValues, Object lower, Object upper, boolean ranged) {
        int score() {
            return prefixValues.size() * 2 + (ranged ? 1 : 0);
        }
    }

    private static boolean indexable(Object value) {
        return value != null && !(value instanceof Missing) && !(value instanceof Map)
            && !(value instanceof Collection) && !BsonRegularExpression.isRegularExpression(value);
    }

    private static List<Object> equalityValues(Object queryValue) {
        if (indexable(queryValue)) {
            return List.of(Utils.normalizeValue(queryValue));
        }
        if (queryValue instanceof Document operators && operators.size() == 1) {
            if (operators.get("$eq") != null && indexable(operators.get("$eq"))) {
                return List.of(Utils.normalizeValue(operators.get("$eq")));
            }
            if (operators.get("$in") instanceof Collection<?> values && !values.isEmpty()
                && values.stream().allMatch(SecondaryIndex::indexable)) {
                List<Object> normalized = new ArrayList<>();
                for (Object value : values) {
                    normalized.add(Utils.normalizeValue(value));
                }
                return normalized;
            }
        }
        return null;
    }

    private Plan plan(Document query) {
        List<List<Object>> prefix = new ArrayList<>();
        long combinations = 1;
        for (String key : keys()) {
            List<Object> values = equalityValues(query.get(key));
            if (values != null && combinations * values.size() <= MAX_EQUALITY_COMBINATIONS) {
                prefix.add(values);
                combinations *= values.size();
                continue;
            }
            if (query.get(key) instanceof Document operators && !operators.isEmpty()
                && RANGE_OPERATORS.containsAll(operators.keySet())
                && operators.values().stream().allMatch(SecondaryIndex::indexable)) {
                Object lower = operators.containsKey("$gt") ? operators.get("$gt") : operators.get("$gte");
                Object upper = operators.containsKey("$lt") ? operators.get("$lt") : operators.get("$lte");
                return new Plan(prefix, lower == null ? null : Utils.normalizeValue(lower),
                    upper == null ? null : Utils.normalizeValue(upper), true);
            }
            if (isSparse() && query.get(key) instanceof Document operators && operators.size() == 1
                && Boolean.TRUE.equals(operators.get("$exists"))) {
                // a sparse index holds every document that has one of its keys: all its entries
                // (under the equality prefix) are a superset of {key: {$exists: true}}
                return new Plan(prefix, null, null, true);
            }
            break;
        }
        return prefix.isEmpty() ? null : new Plan(prefix, null, null, false);
    }

    /** 0 when this index cannot serve the query; otherwise higher for a narrower lookup. */
    public synchronized int score(Document query) {
        Plan plan = plan(query);
        return plan == null ? 0 : plan.score();
    }

    @Override
    public synchronized boolean canHandle(Document query) {
        return plan(query) != null;
    }

    @Override
    public synchronized Iterable<P> getPositions(Document query) {
        Plan plan = plan(query);
        if (plan == null) {
            throw new IllegalStateException("index " + getName() + " cannot serve " + query);
        }
        TreeSet<P> positions = new TreeSet<>();
        for (List<Object> prefix : combinations(plan.prefixValues())) {
            collect(prefix, plan, positions);
        }
        return positions;
    }

    private void collect(List<Object> prefix, Plan plan, Set<P> into) {
        int p = prefix.size();
        List<Object> start = prefix;
        if (plan.ranged() && plan.lower() != null) {
            start = new ArrayList<>(prefix);
            start.add(plan.lower());
        }
        for (Map.Entry<List<Object>, Set<P>> entry : entries.tailMap(start, true).entrySet()) {
            List<Object> key = entry.getKey();
            if (compareKeys(key.subList(0, p), prefix) != 0) {
                break;
            }
            if (plan.ranged() && plan.upper() != null && ValueComparator.asc().compare(key.get(p), plan.upper()) > 0) {
                break;
            }
            into.addAll(entry.getValue());
        }
    }

    private static List<List<Object>> combinations(List<List<Object>> valuesPerKey) {
        List<List<Object>> result = new ArrayList<>();
        result.add(new ArrayList<>());
        for (List<Object> values : valuesPerKey) {
            List<List<Object>> next = new ArrayList<>();
            for (List<Object> partial : result) {
                for (Object value : values) {
                    List<Object> extended = new ArrayList<>(partial);
                    extended.add(value);
                    next.add(extended);
                }
            }
            result = next;
        }
        return result;
    }
}
