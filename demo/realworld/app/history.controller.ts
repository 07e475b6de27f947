import { Controller, Get, Inject, NotFoundException, Param } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import type { HistoryEntry, HistoryReader } from '../../../src/index.js';
import { EVENT_HISTORY_STORE } from '../../../src/nestjs/index.js';
import { ArticleEntity } from './article.entity.js';

/** Reads the history back: a feature the library adds, not part of adopting it. */
@Controller('history')
export class HistoryController {
  constructor(
    @Inject(EVENT_HISTORY_STORE) private readonly history: HistoryReader,
    @InjectRepository(ArticleEntity) private readonly articleRepository: Repository<ArticleEntity>,
  ) {}

  @Get('articles/:slug')
  async article(@Param('slug') slug: string): Promise<HistoryEntry[]> {
    const article = await this.articleRepository.findOneBy({ slug });
    if (!article) throw new NotFoundException({ message: 'Article not found' });
    return this.history.list('ArticleEntity', String(article.id));
  }

  @Get('users/:id')
  async user(@Param('id') id: string): Promise<HistoryEntry[]> {
    return this.history.list('UserEntity', id);
  }
}
