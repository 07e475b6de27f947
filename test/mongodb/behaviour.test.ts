import { runBehaviourSuite } from '../integration/behaviour.js';
import { MongoFixture } from './mongodb-fixture.js';

runBehaviourSuite(new MongoFixture());
