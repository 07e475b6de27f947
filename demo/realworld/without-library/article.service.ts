import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { DeleteResult, Repository } from 'typeorm';
import { ArticleEntity } from './article.entity.js';
import type { ArticleRO, CreateArticleDto, UpdateArticleDto } from './dto.js';
import { UserEntity } from './user.entity.js';

const slugify = (title: string): string =>
  `${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;

@Injectable()
export class ArticleService {
  constructor(
    @InjectRepository(ArticleEntity) private readonly articleRepository: Repository<ArticleEntity>,
    @InjectRepository(UserEntity) private readonly userRepository: Repository<UserEntity>,
  ) {}

  async findOne(slug: string): Promise<ArticleRO> {
    const article = await this.articleRepository.findOne({ where: { slug }, relations: { author: true } });
    if (!article) throw new NotFoundException({ message: 'Article not found' });
    return this.buildArticleRO(article);
  }

  async create(username: string, dto: CreateArticleDto): Promise<ArticleRO> {
    const author = await this.userRepository.findOneBy({ username });
    if (!author) throw new NotFoundException({ message: 'User not found' });
    const article = new ArticleEntity();
    article.title = dto.title;
    article.description = dto.description;
    article.body = dto.body;
    article.slug = slugify(dto.title);
    article.author = author;
    const saved = await this.articleRepository.save(article);
    return this.buildArticleRO(saved);
  }

  async update(slug: string, dto: UpdateArticleDto): Promise<ArticleRO> {
    const article = await this.articleRepository.findOne({ where: { slug }, relations: { author: true } });
    if (!article) throw new NotFoundException({ message: 'Article not found' });
    const updated = Object.assign(article, dto);
    const saved = await this.articleRepository.save(updated);
    return this.buildArticleRO(saved);
  }

  async favorite(slug: string): Promise<ArticleRO> {
    const article = await this.articleRepository.findOne({ where: { slug }, relations: { author: true } });
    if (!article) throw new NotFoundException({ message: 'Article not found' });
    await this.articleRepository.update({ slug }, { favoriteCount: article.favoriteCount + 1 });
    return this.findOne(slug);
  }

  async delete(slug: string): Promise<DeleteResult> {
    return this.articleRepository.delete({ slug });
  }

  private buildArticleRO(article: ArticleEntity): ArticleRO {
    const { slug, title, description, body } = article;
    return { article: { slug, title, description, body, author: article.author?.username } };
  }
}
